"""Codes texted to confirm a payment: for an order a merchant created, or for an SMS
``PAY`` / ``TRF`` command. The subscriber confirms by texting the code back.

A code is six random digits. Only a keyed hash is stored, computed over the code *and* what
it confirms (number, purpose, order or target, amount), so a code cannot confirm anything
else. It lives ``sms_code_ttl_s`` (5 min) and allows ``sms_code_max_attempts`` (3) wrong
replies; a new code for the same order replaces the old one. A code is spent (``used``)
before what it confirms is carried out, so a repeated reply never pays twice.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from paycell.context import Context
from paycell.crypto import token_hash
from paycell.funding.cash_common import locking
from paycell.merchants.model import Merchant
from paycell.money import format_amount
from paycell.payments import rules
from paycell.payments.tables import sms_confirmations

OPEN, USED, DEAD = "open", "used", "dead"


@dataclass(frozen=True)
class Confirmation:
    id: int
    msisdn: str
    subscriber_id: int
    purpose: str  # order | pay | trf
    order_id: int | None
    target: str | None
    amount_fen: int
    expires_at: int


def _hash(ctx: Context, msisdn: str, purpose: str, order_id: int | None, target: str | None,
          amount_fen: int, code: str) -> str:
    bound = f"sms-confirm|{msisdn}|{purpose}|{order_id or ''}|{target or ''}|{amount_fen}|{code}"
    return token_hash(ctx.settings.secret_key, bound)


def _new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def open_code(ctx: Context, conn: Connection, *, msisdn: str, subscriber_id: int,
              purpose: str, amount_fen: int, now: int, order_id: int | None = None,
              target: str | None = None) -> str:
    """Store a fresh code (in the caller's transaction) and return it, to be texted after
    the commit. A previous open code for the same order is replaced."""
    if order_id is not None:
        conn.execute(update(sms_confirmations).where(
            sms_confirmations.c.order_id == order_id, sms_confirmations.c.state == OPEN)
            .values(state=DEAD))
    code, row = _code_row(ctx, msisdn=msisdn, subscriber_id=subscriber_id, purpose=purpose,
                          amount_fen=amount_fen, now=now, order_id=order_id, target=target)
    conn.execute(sms_confirmations.insert().values(**row))
    return code


def new_order_code(ctx: Context, order: Any, now: int) -> tuple[str, dict[str, Any]]:
    """A new order's first code and the row that stores it (for a batch to insert)."""
    return _code_row(ctx, msisdn=order.payer_msisdn, subscriber_id=order.payer_subscriber_id,
                     purpose="order", amount_fen=order.amount_fen, now=now, order_id=order.id)


def _code_row(ctx: Context, *, msisdn: str, subscriber_id: int, purpose: str,
              amount_fen: int, now: int, order_id: int | None = None,
              target: str | None = None) -> tuple[str, dict[str, Any]]:
    code = _new_code()
    return code, dict(
        msisdn=msisdn, subscriber_id=subscriber_id, purpose=purpose, order_id=order_id,
        target=target, amount_fen=amount_fen, state=OPEN, attempts=0,
        code_hash=_hash(ctx, msisdn, purpose, order_id, target, amount_fen, code),
        expires_at=now + ctx.settings.sms_code_ttl_s * 1_000_000, created_at=now)


def open_for_order(ctx: Context, conn: Connection, order_id: int, subscriber_id: int,
                   msisdn: str, amount_fen: int, now: int) -> str:
    return open_code(ctx, conn, msisdn=msisdn, subscriber_id=subscriber_id, purpose="order",
                     amount_fen=amount_fen, now=now, order_id=order_id)


def text_order_code(ctx: Context, merchant: Merchant, order: Any, code: str | None) -> None:
    if code is None:
        return
    minutes = max(1, ctx.settings.sms_code_ttl_s // 60)
    ctx.sms.send(order.payer_msisdn, rules.summary_text(
        merchant.name, order.subject, format_amount(order.amount_fen), code, minutes))


def resend_order_code(ctx: Context, order: Any, merchant: Merchant) -> None:
    """A new code for a waiting order (the old one expired or was mistyped away)."""
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        code = open_for_order(ctx, conn, order.id, order.payer_subscriber_id,
                              order.payer_msisdn, order.amount_fen, now)
    text_order_code(ctx, merchant, order, code)


def take(ctx: Context, msisdn: str, code: str) -> tuple[Confirmation | None, int]:
    """Spend the open code ``code`` texted by ``msisdn``: the confirmation it belongs to,
    marked used, or None and how many tries are left on the number's open codes (each
    wrong reply counts against all of them; at the limit they die); -1 if none was open."""
    now, limit = ctx.clock.now_us(), ctx.settings.sms_code_max_attempts
    c = sms_confirmations
    with ctx.engine.begin() as conn:
        rows = conn.execute(locking(conn, select(c).where(
            c.c.msisdn == msisdn, c.c.state == OPEN).order_by(c.c.id))).all()
        live = [r for r in rows if r.expires_at > now]
        expired = [r.id for r in rows if r.expires_at <= now]
        if expired:
            conn.execute(update(c).where(c.c.id.in_(expired)).values(state=DEAD))
        for r in live:
            want = _hash(ctx, msisdn, r.purpose, r.order_id, r.target, r.amount_fen, code)
            if hmac.compare_digest(want, r.code_hash):
                conn.execute(update(c).where(c.c.id == r.id).values(state=USED))
                return Confirmation(r.id, r.msisdn, r.subscriber_id, r.purpose, r.order_id,
                                    r.target, r.amount_fen, r.expires_at), 0
        left = -1 if not live else 0
        for r in live:
            attempts = r.attempts + 1
            conn.execute(update(c).where(c.c.id == r.id).values(
                attempts=attempts, state=DEAD if attempts >= limit else OPEN))
            left = max(left, limit - attempts)
        return None, left


def sent_last_hour(ctx: Context, msisdn: str) -> int:
    from sqlalchemy import func

    since = ctx.clock.now_us() - 3_600_000_000
    with ctx.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(sms_confirmations).where(
            sms_confirmations.c.msisdn == msisdn, sms_confirmations.c.purpose != "order",
            sms_confirmations.c.created_at > since)).scalar_one())


def record_result(ctx: Context, confirmation_id: int, ref: str) -> None:
    with ctx.engine.begin() as conn:
        conn.execute(update(sms_confirmations).where(sms_confirmations.c.id == confirmation_id)
                     .values(result_ref=ref[:64]))


def retire_for_order(conn: Connection, order_id: int) -> None:
    """The order was paid or closed: its open codes die (in the caller's transaction)."""
    conn.execute(update(sms_confirmations).where(
        sms_confirmations.c.order_id == order_id, sms_confirmations.c.state == OPEN)
        .values(state=DEAD))
