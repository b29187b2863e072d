"""Merchants' use cases other than onboarding: look-ups, stores, webhook secrets.

Onboarding (apply, review, approval, suspend, terminate) is in ``onboarding.py``; API
credentials in ``credentials.py``; signed-request verification in ``auth.py``. Each public
function owns its transaction(s).
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from paycell.context import Context
from paycell.crypto import seal, unseal
from paycell.funding.cash_common import locking
from paycell.merchants import rules
from paycell.merchants.errors import (
    MerchantNotFoundError,
    MerchantStateError,
    StoreCodeTakenError,
    StoreNotFoundError,
)
from paycell.merchants.model import Merchant, OnboardedMerchant, Store
from paycell.merchants.tables import events, merchants, stores
from paycell.merchants.tables import webhook_secrets as secrets_table

WEBHOOK_PURPOSE = "merchant-webhook-secret"
WEBHOOK_PREFIX = "whsec_"


def to_merchant(row: Any) -> Merchant:
    return Merchant(id=row.id, code=row.code, name=row.name, category=row.category,
                    state=row.state, payable_account_id=row.payable_account_id,
                    default_notify_url=row.default_notify_url, created_at=row.created_at,
                    company=row.company, activated_at=row.activated_at)


def lock_merchant(conn: Connection, merchant_id: int) -> Any:
    """The merchant's row, locked for this transaction (FOR UPDATE on PostgreSQL; SQLite's
    BEGIN IMMEDIATE serialises writers); :class:`MerchantNotFoundError` if none."""
    row = conn.execute(locking(conn, select(merchants).where(merchants.c.id == merchant_id))
                       ).first()
    if row is None:
        raise MerchantNotFoundError(f"merchant {merchant_id} does not exist")
    return row


def record_event(conn: Connection, merchant_id: int, kind: str, actor: str, now: int,
                 reason: str | None = None) -> None:
    conn.execute(events.insert().values(merchant_id=merchant_id, kind=kind, actor=actor[:80],
                                        reason=reason, created_at=now))


def get_merchant(ctx: Context, merchant_id: int) -> Merchant:
    """The merchant with this id, in any state; :class:`MerchantNotFoundError` if none."""
    with ctx.engine.connect() as conn:
        row = conn.execute(select(merchants).where(merchants.c.id == merchant_id)).first()
    if row is None:
        raise MerchantNotFoundError(f"merchant {merchant_id} does not exist")
    return to_merchant(row)


def find_by_code(ctx: Context, code: str) -> Merchant | None:
    """The merchant whose public number is ``code`` (``M100001``; case and surrounding
    blanks ignored), in any state, or None."""
    code = code.strip().upper()
    if not rules.MERCHANT_CODE.fullmatch(code):
        return None
    with ctx.engine.connect() as conn:
        row = conn.execute(select(merchants).where(merchants.c.code == code)).first()
    return None if row is None else to_merchant(row)


def list_merchants(ctx: Context, *, state: str | None = None, before_id: int | None = None,
                   limit: int = 50) -> list[Merchant]:
    """Merchants, newest first, optionally in one state."""
    stmt = select(merchants).order_by(merchants.c.id.desc()).limit(limit)
    if state is not None:
        stmt = stmt.where(merchants.c.state == state)
    if before_id is not None:
        stmt = stmt.where(merchants.c.id < before_id)
    with ctx.engine.connect() as conn:
        return [to_merchant(r) for r in conn.execute(stmt)]


def merchant_events(ctx: Context, merchant_id: int) -> list[tuple[str, str, str | None, int]]:
    """The merchant's audit log, oldest first: (kind, actor, reason, at)."""
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(events).where(events.c.merchant_id == merchant_id)
                            .order_by(events.c.id)).all()
    return [(r.kind, r.actor, r.reason, r.created_at) for r in rows]


def application_details(ctx: Context, merchant_id: int) -> dict[str, Any]:
    """What operators review: contact and settlement bank (account number masked)."""
    with ctx.engine.connect() as conn:
        r = conn.execute(select(merchants).where(merchants.c.id == merchant_id)).first()
    if r is None:
        raise MerchantNotFoundError(f"merchant {merchant_id} does not exist")
    return {"contact_name": r.contact_name, "contact_phone": r.contact_phone,
            "contact_email": r.contact_email, "bank_name": r.bank_name,
            "bank_account_holder": r.bank_account_holder,
            "bank_account_masked": "****" + r.bank_account_last4}


# -- webhook secrets -------------------------------------------------------------------------
def format_webhook_secret(secret: bytes) -> str:
    """The form merchants configure: ``whsec_`` + base64 (Standard Webhooks)."""
    return WEBHOOK_PREFIX + base64.b64encode(secret).decode()


def new_webhook_secret(ctx: Context, conn: Connection, merchant_id: int, now: int) -> bytes:
    """Retire the current webhook secret (if any) and make a new one, in ``conn``'s
    transaction; the caller holds the merchant's row lock."""
    secret = secrets.token_bytes(32)
    conn.execute(update(secrets_table).where(secrets_table.c.merchant_id == merchant_id,
                                             secrets_table.c.retired_at.is_(None))
                 .values(retired_at=now))
    conn.execute(secrets_table.insert().values(
        merchant_id=merchant_id, secret_sealed=seal(ctx.settings.secret_key, WEBHOOK_PURPOSE,
                                                    secret), created_at=now))
    return secret


def rotate_webhook_secret(ctx: Context, merchant_id: int, actor: str) -> bytes:
    """A new webhook secret; the old one keeps signing notifications beside it for
    ``settings.webhook_secret_overlap_s``. Refused (``merchant_state_invalid``) for a
    merchant that is terminated or rejected. One current secret per merchant is enforced
    by a unique index."""
    now = ctx.clock.now_us()
    try:
        with ctx.engine.begin() as conn:
            row = lock_merchant(conn, merchant_id)
            if row.state in rules.FINAL:
                raise MerchantStateError(f"the merchant is {row.state}", state=row.state,
                                         action="rotate_webhook_secret")
            secret = new_webhook_secret(ctx, conn, merchant_id, now)
            record_event(conn, merchant_id, "webhook_secret_rotated", actor, now)
    except IntegrityError:
        raise MerchantStateError("the webhook secret was rotated concurrently; retry",
                                 state="busy", action="rotate_webhook_secret") from None
    return secret


def set_notify_url(ctx: Context, merchant_id: int, url: str | None, actor: str) -> Merchant:
    """Set (or, with None, clear) where the merchant's notifications go when an order names
    no ``notify_url`` of its own. Notifications already queued keep their URL. Idempotent;
    ``merchant_invalid`` for anything but an http(s) URL, ``merchant_state_invalid`` for a
    terminated or rejected merchant."""
    url = rules.notify_url(url, ctx.settings)
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        row = lock_merchant(conn, merchant_id)
        if row.state in rules.FINAL:
            raise MerchantStateError(f"the merchant is {row.state}", state=row.state,
                                     action="set_notify_url")
        if row.default_notify_url != url:
            conn.execute(update(merchants).where(merchants.c.id == merchant_id)
                         .values(default_notify_url=url))
            record_event(conn, merchant_id, "notify_url_changed", actor, now, url)
    return get_merchant(ctx, merchant_id)


def webhook_secrets(ctx: Context, merchant_id: int) -> list[bytes]:
    """The secrets notifications to this merchant are signed with: the current one first,
    then any rotated away less than ``settings.webhook_secret_overlap_s`` ago, newest
    first. Empty for a merchant that was never activated (or does not exist)."""
    t = secrets_table
    since = ctx.clock.now_us() - ctx.settings.webhook_secret_overlap_s * 1_000_000
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(t).where(t.c.merchant_id == merchant_id,
                                            (t.c.retired_at.is_(None)) | (t.c.retired_at > since))
                            .order_by(t.c.retired_at.is_not(None), t.c.id.desc())).all()
    return [unseal(ctx.settings.secret_key, WEBHOOK_PURPOSE, r.secret_sealed) for r in rows]


# -- stores ----------------------------------------------------------------------------------
def _store(r: Any) -> Store:
    return Store(r.id, r.merchant_id, r.code, r.name, r.address, r.state, r.created_at)


def add_store(ctx: Context, merchant_id: int, code: str, name: str, address: str,
              actor: str) -> Store:
    """Open a store of the merchant. ``code`` is the merchant's own, unique per merchant
    (:class:`StoreCodeTakenError`); refused for a terminated or rejected merchant."""
    code = rules.pattern(code, "code", rules.STORE_CODE,
                         "1 to 32 letters, digits, _ and -, starting with a letter or digit")
    name = rules.text(name, "name", 100)
    address = rules.text(address, "address", 200)
    now = ctx.clock.now_us()
    try:
        with ctx.engine.begin() as conn:
            row = lock_merchant(conn, merchant_id)
            if row.state not in rules.LIVE:
                raise MerchantStateError(f"the merchant is {row.state}", state=row.state,
                                         action="add_store")
            sid = conn.execute(stores.insert().values(
                merchant_id=merchant_id, code=code, name=name, address=address, state="open",
                created_at=now).returning(stores.c.id)).scalar_one()
            record_event(conn, merchant_id, "store_added", actor, now, code)
    except IntegrityError:
        raise StoreCodeTakenError(f"the merchant has a store {code!r}", code=code) from None
    return get_store(ctx, merchant_id, sid)


def get_store(ctx: Context, merchant_id: int, store_id: int) -> Store:
    """The merchant's store; :class:`StoreNotFoundError` if it does not exist or belongs
    to another merchant (indistinguishable on purpose)."""
    with ctx.engine.connect() as conn:
        row = conn.execute(select(stores).where(stores.c.id == store_id,
                                                stores.c.merchant_id == merchant_id)).first()
    if row is None:
        raise StoreNotFoundError(f"no store {store_id}")
    return _store(row)


def list_stores(ctx: Context, merchant_id: int) -> list[Store]:
    with ctx.engine.connect() as conn:
        return [_store(r) for r in conn.execute(
            select(stores).where(stores.c.merchant_id == merchant_id).order_by(stores.c.id))]


def close_store(ctx: Context, merchant_id: int, store_id: int, actor: str) -> Store:
    """Close the merchant's store (idempotent); :class:`StoreNotFoundError` as above."""
    store = get_store(ctx, merchant_id, store_id)
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        if conn.execute(update(stores).where(stores.c.id == store.id, stores.c.state == "open")
                        .values(state="closed")).rowcount:
            record_event(conn, merchant_id, "store_closed", actor, now, store.code)
    return get_store(ctx, merchant_id, store_id)


# -- for tests and the demo --------------------------------------------------------------------
def create_active_merchant(ctx: Context, *, name: str, category: str = "retail",
                           **application: Any) -> OnboardedMerchant:
    """Walk the real onboarding steps (apply, review, approval by a second operator, an HMAC
    credential) and return the active merchant with its key id, secret and webhook secret.
    ``application`` overrides the other fields of ``onboarding.Application`` (company,
    notify_url, contact and bank details); sensible defaults otherwise."""
    from paycell.merchants.onboarding import onboard

    return onboard(ctx, name=name, category=category, **application)
