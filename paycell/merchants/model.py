"""What the rest of the platform sees of merchants."""

from __future__ import annotations

from dataclasses import dataclass

STATES = ("applied", "in_review", "active", "suspended", "terminated", "rejected")


@dataclass(frozen=True)
class Merchant:
    """A merchant. ``code`` (``M100001``) is its public number (SMS ``PAY``, receipts);
    ``payable_account_id`` is its MERCHANT_PAYABLE ledger account, opened on activation.
    ``state``: applied -> in_review -> active <-> suspended -> terminated; or rejected."""

    id: int
    code: str
    name: str
    category: str
    state: str
    payable_account_id: int | None
    default_notify_url: str | None
    created_at: int
    company: str = ""
    activated_at: int | None = None


@dataclass(frozen=True)
class Store:
    id: int
    merchant_id: int
    code: str
    name: str
    address: str
    state: str  # open | closed
    created_at: int


@dataclass(frozen=True)
class Credential:
    """An API credential: ``hmac`` (key id + secret) or ``ed25519`` (a registered public
    key, hex). Active while ``revoked_at`` is None or still in the future."""

    id: int
    merchant_id: int
    key_id: str
    kind: str
    label: str
    public_key: str | None
    created_by: str
    created_at: int
    revoked_at: int | None

    def active_at(self, now_us: int) -> bool:
        return self.revoked_at is None or self.revoked_at > now_us


@dataclass(frozen=True)
class OnboardedMerchant:
    """An active merchant with its first HMAC credential and webhook secret (tests, demo)."""

    merchant: Merchant
    key_id: str
    secret: str
    webhook_secret: bytes
