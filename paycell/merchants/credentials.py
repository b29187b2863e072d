"""Merchants' API credentials: key id + secret (HMAC), or a registered Ed25519 public key.

Several may be active at once, so a merchant rotates by creating a new credential, moving
its systems over, then revoking the old one (at once, or at a time given: a scheduled
revocation). HMAC secrets are sealed (``crypto.seal``), since verifying a signature needs
the secret itself; they are shown once, when created.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import bindparam, func, select, update

from paycell.bulk import select_any
from paycell.context import Context
from paycell.crypto import seal, unseal
from paycell.merchants.errors import (
    CredentialInvalidError,
    CredentialLastActiveError,
    CredentialLimitError,
    CredentialNotFoundError,
    MerchantStateError,
)
from paycell.merchants.model import Credential, Merchant
from paycell.merchants.service import lock_merchant, record_event, to_merchant
from paycell.merchants.tables import credentials, merchants

SECRET_PURPOSE = "merchant-api-secret"
KEY_PREFIX = "mk_"
SECRET_PREFIX = "msk_"
MAX_ACTIVE = 5
MAX_REVOKE_DELAY_S = 7 * 86_400
# States in which a merchant may hold working credentials (a suspended one keeps its keys
# but every signed request is refused with merchant_not_active).
ISSUABLE = frozenset({"active", "suspended"})


def _cred(r: Any) -> Credential:
    return Credential(id=r.id, merchant_id=r.merchant_id, key_id=r.key_id, kind=r.kind,
                      label=r.label, public_key=r.public_key, created_by=r.created_by,
                      created_at=r.created_at, revoked_at=r.revoked_at)


def _public_key_hex(text: str | None) -> str:
    """A 32-byte Ed25519 public key given as hex or base64 (standard or url-safe)."""
    raw = (text or "").strip()
    key: bytes | None = None
    if len(raw) == 64:
        try:
            key = bytes.fromhex(raw)
        except ValueError:
            key = None
    if key is None:
        try:
            key = base64.urlsafe_b64decode(raw.replace("+", "-").replace("/", "_")
                                           + "=" * (-len(raw) % 4))
        except (binascii.Error, ValueError):
            key = None
    if key is None or len(key) != 32:
        raise CredentialInvalidError("public_key is a 32-byte Ed25519 public key, hex or "
                                     "base64", field="public_key")
    try:
        Ed25519PublicKey.from_public_bytes(key)
    except ValueError:
        raise CredentialInvalidError("public_key is not an Ed25519 public key",
                                     field="public_key") from None
    return key.hex()


def issue_credential(ctx: Context, merchant_id: int, *, actor: str, kind: str = "hmac",
                     public_key: str | None = None,
                     label: str = "") -> tuple[Credential, str | None]:
    """A new credential for an active (or suspended) merchant; for ``hmac``, its secret,
    shown only here. At most ``MAX_ACTIVE`` active at once (``credential_limit_reached``).
    Raises :class:`CredentialInvalidError`, ``merchant_not_found``,
    ``merchant_state_invalid``. Not idempotent by itself (the API adds Idempotency-Key)."""
    if kind not in ("hmac", "ed25519"):
        raise CredentialInvalidError("kind is hmac or ed25519", field="kind")
    label = (label or "").strip()
    if len(label) > 64 or not label.isprintable():
        raise CredentialInvalidError("label is up to 64 printable characters", field="label")
    pub = _public_key_hex(public_key) if kind == "ed25519" else None
    if kind == "hmac" and public_key:
        raise CredentialInvalidError("an hmac credential takes no public_key",
                                     field="public_key")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32) if kind == "hmac" else None
    key_id = KEY_PREFIX + secrets.token_hex(12)
    now = ctx.clock.now_us()
    c = credentials
    with ctx.engine.begin() as conn:
        row = lock_merchant(conn, merchant_id)
        if row.state not in ISSUABLE:
            raise MerchantStateError(f"the merchant is {row.state}", state=row.state,
                                     action="issue_credential")
        active = conn.execute(select(func.count()).select_from(c).where(
            c.c.merchant_id == merchant_id,
            (c.c.revoked_at.is_(None)) | (c.c.revoked_at > now))).scalar_one()
        if active >= MAX_ACTIVE:
            raise CredentialLimitError(f"a merchant has at most {MAX_ACTIVE} active "
                                       "credentials; revoke one first", limit=MAX_ACTIVE)
        sealed = (seal(ctx.settings.secret_key, SECRET_PURPOSE, secret.encode())
                  if secret else None)
        cid = conn.execute(c.insert().values(
            merchant_id=merchant_id, key_id=key_id, kind=kind, secret_sealed=sealed,
            public_key=pub, label=label, created_by=actor[:80], created_at=now)
            .returning(c.c.id)).scalar_one()
        record_event(conn, merchant_id, "credential_issued", actor, now, key_id)
    with ctx.engine.connect() as conn:
        return _cred(conn.execute(select(c).where(c.c.id == cid)).one()), secret


def list_credentials(ctx: Context, merchant_id: int) -> list[Credential]:
    """The merchant's credentials (never their secrets), oldest first."""
    with ctx.engine.connect() as conn:
        return [_cred(r) for r in conn.execute(
            select(credentials).where(credentials.c.merchant_id == merchant_id)
            .order_by(credentials.c.id))]


def revoke_credential(ctx: Context, merchant_id: int, key_id: str, *, actor: str,
                      after_s: int = 0, allow_last: bool = False) -> Credential:
    """Revoke the merchant's credential now, or ``after_s`` seconds from now (an overlap for
    a rotation). A revocation never moves later; revoking again is harmless. Refused with
    :class:`CredentialNotFoundError` if the key is not this merchant's, and with
    :class:`CredentialLastActiveError` if no other credential would stay active (unless
    ``allow_last``: operators cutting off a leaked key)."""
    if not 0 <= after_s <= MAX_REVOKE_DELAY_S:
        raise CredentialInvalidError(f"after_s is 0 to {MAX_REVOKE_DELAY_S}", field="after_s")
    now = ctx.clock.now_us()
    at = now + after_s * 1_000_000
    c = credentials
    with ctx.engine.begin() as conn:
        lock_merchant(conn, merchant_id)
        row = conn.execute(select(c).where(c.c.key_id == key_id,
                                           c.c.merchant_id == merchant_id)).first()
        if row is None:
            raise CredentialNotFoundError(f"no credential {key_id!r}")
        if row.revoked_at is not None and row.revoked_at <= at:
            return _cred(row)
        others = conn.execute(select(func.count()).select_from(c).where(
            c.c.merchant_id == merchant_id, c.c.id != row.id,
            (c.c.revoked_at.is_(None)) | (c.c.revoked_at > now))).scalar_one()
        if others == 0 and not allow_last:
            raise CredentialLastActiveError(
                "this is the merchant's only active credential: create another first")
        conn.execute(update(c).where(c.c.id == row.id).values(revoked_at=at))
        record_event(conn, merchant_id, "credential_revoked", actor, now,
                     key_id if after_s == 0 else f"{key_id} in {after_s}s")
        return _cred(conn.execute(select(c).where(c.c.id == row.id)).one())


def revoke_all(conn: Any, merchant_id: int, now: int) -> None:
    """Revoke every credential of the merchant now, in ``conn``'s transaction."""
    c = credentials
    conn.execute(update(c).where(c.c.merchant_id == merchant_id,
                                 (c.c.revoked_at.is_(None)) | (c.c.revoked_at > now))
                 .values(revoked_at=now))


# Every signed merchant request runs these two: built once, not per request.
_BY_KEY_ID = select(credentials).where(credentials.c.key_id == bindparam("kid"))
_MERCHANT = select(merchants).where(merchants.c.id == bindparam("mid"))


def lookup_key(ctx: Context, key_id: str) -> tuple[Credential, str | None, Merchant] | None:
    """The credential with this key id, its secret (HMAC) and its merchant; None if the
    key id is unknown."""
    with ctx.engine.connect() as conn:
        row = conn.execute(_BY_KEY_ID, {"kid": key_id}).first()
        if row is None:
            return None
        m = conn.execute(_MERCHANT, {"mid": row.merchant_id}).one()
    secret = (unseal(ctx.settings.secret_key, SECRET_PURPOSE, row.secret_sealed).decode()
              if row.secret_sealed else None)
    return _cred(row), secret, to_merchant(m)


def keys_now(conn: Any, key_ids: list[str]) -> dict[str, tuple[Credential, Merchant]]:
    """The credentials with these key ids and their merchants as they are now, read in
    ``conn``'s transaction (two reads for a batch of signed requests, on the driver's
    cursor on PostgreSQL: SQLAlchemy's execution cost more than the reads)."""
    creds = [_cred(r) for r in select_any(conn, credentials, "key_id", key_ids)]
    if not creds:
        return {}
    by_id = {r.id: to_merchant(r) for r in select_any(
        conn, merchants, "id", {c.merchant_id for c in creds})}
    return {c.key_id: (c, by_id[c.merchant_id]) for c in creds}
