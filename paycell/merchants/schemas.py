"""Request and response models of the merchants' API (operators' and merchants' own).
Times are RFC 3339 UTC."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from paycell.clock import rfc3339
from paycell.merchants.model import Credential, Merchant, Store
from paycell.merchants.service import format_webhook_secret


def _t(us: int | None) -> str | None:
    return None if us is None else rfc3339(us)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApplicationIn(_In):
    name: str = Field(min_length=1, max_length=100, examples=["Harbour Coffee"])
    company: str = Field(min_length=1, max_length=200, examples=["Harbour Coffee Co., Ltd."])
    category: str = Field(min_length=2, max_length=32, examples=["food_beverage"])
    contact_name: str = Field(min_length=1, max_length=100, examples=["Wang Fang"])
    contact_phone: str = Field(min_length=6, max_length=32, examples=["+8613800138000"])
    contact_email: str = Field(min_length=3, max_length=254, examples=["ops@harbour.example"])
    bank_name: str = Field(min_length=1, max_length=100, examples=["Bank of Example"])
    bank_account_holder: str = Field(min_length=1, max_length=200)
    bank_account_number: str = Field(min_length=8, max_length=40, examples=["6222020200112233"])
    notify_url: str | None = Field(default=None, max_length=500,
                                   examples=["https://harbour.example/paycell/notify"])


class NoteIn(_In):
    note: str | None = Field(default=None, max_length=500)


class ReasonIn(_In):
    reason: str = Field(min_length=1, max_length=500)


class StoreIn(_In):
    code: str = Field(min_length=1, max_length=32, examples=["SZ-01"])
    name: str = Field(min_length=1, max_length=100, examples=["Harbour Coffee Nanshan"])
    address: str = Field(min_length=1, max_length=200, examples=["1 Keyuan Rd, Shenzhen"])


class CredentialIn(_In):
    kind: str = Field(default="hmac", description="hmac (we make a secret) or ed25519 "
                                                  "(you send your public key)")
    public_key: str | None = Field(default=None, max_length=100,
                                   description="Ed25519 public key, hex or base64")
    label: str = Field(default="", max_length=64, examples=["checkout servers 2026"])


class RevokeIn(_In):
    after_s: int = Field(default=0, ge=0, le=7 * 86_400,
                         description="revoke this many seconds from now (rotation overlap)")


class NotifyUrlIn(_In):
    notify_url: str | None = Field(max_length=500, examples=["https://shop.example/notify"])


class MerchantOut(BaseModel):
    id: int
    code: str
    name: str
    company: str
    category: str
    state: str
    payable_account_id: int | None
    default_notify_url: str | None
    created_at: str
    activated_at: str | None

    @classmethod
    def of(cls, m: Merchant) -> MerchantOut:
        return cls(id=m.id, code=m.code, name=m.name, company=m.company, category=m.category,
                   state=m.state, payable_account_id=m.payable_account_id,
                   default_notify_url=m.default_notify_url, created_at=rfc3339(m.created_at),
                   activated_at=_t(m.activated_at))


class MerchantPage(BaseModel):
    items: list[MerchantOut]
    next_cursor: str | None


class StoreOut(BaseModel):
    id: int
    code: str
    name: str
    address: str
    state: str
    created_at: str

    @classmethod
    def of(cls, s: Store) -> StoreOut:
        return cls(id=s.id, code=s.code, name=s.name, address=s.address, state=s.state,
                   created_at=rfc3339(s.created_at))


class StoreList(BaseModel):
    items: list[StoreOut]


class CredentialOut(BaseModel):
    key_id: str
    kind: str
    label: str
    public_key: str | None
    created_by: str
    created_at: str
    revoked_at: str | None
    active: bool

    @classmethod
    def of(cls, c: Credential, now_us: int) -> CredentialOut:
        return cls(key_id=c.key_id, kind=c.kind, label=c.label, public_key=c.public_key,
                   created_by=c.created_by, created_at=rfc3339(c.created_at),
                   revoked_at=_t(c.revoked_at), active=c.active_at(now_us))


class CredentialList(BaseModel):
    items: list[CredentialOut]


class CredentialCreatedOut(BaseModel):
    credential: CredentialOut
    secret: str | None = Field(description="the HMAC secret, shown once; null for ed25519 "
                                           "and on an idempotent replay")
    secret_shown: bool


class WebhookSecretOut(BaseModel):
    secret: str = Field(description="whsec_ + base64: verify our notifications with it")
    previous_valid: int = Field(description="older secrets still signing notifications")

    @classmethod
    def of(cls, secrets: list[bytes]) -> WebhookSecretOut:
        return cls(secret=format_webhook_secret(secrets[0]), previous_valid=len(secrets) - 1)


class EventOut(BaseModel):
    kind: str
    actor: str
    reason: str | None
    at: str


class MerchantDetail(BaseModel):
    merchant: MerchantOut
    application: dict[str, str]
    stores: list[StoreOut]
    credentials: list[CredentialOut]
    events: list[EventOut]
    pending_approvals: list[int]
