"""PIN reset by SMS one-time code.

A code is six random digits, sent through ``ctx.sms``; only its verification value
(``pins.hash_pin``) is stored. It lives ``sms_code_ttl_s`` (5 min) and allows
``sms_code_max_attempts`` (3) tries; a new code replaces the previous one. At most
``sms_codes_per_hour`` (5) are sent per subscriber an hour. Asking for a code never says
whether the number has a wallet (no enumeration).
"""

from __future__ import annotations

import secrets

from sqlalchemy import func, select, update

from paycell.context import Context
from paycell.subscribers import pins
from paycell.subscribers.errors import CodeInvalidError
from paycell.subscribers.service import (
    check_pin,
    find_by_msisdn,
    normalise_msisdn,
    record_event,
    set_pin,
)
from paycell.subscribers.tables import codes

PIN_RESET = "pin_reset"
HOUR_US = 3_600 * 1_000_000


def request_pin_reset(ctx: Context, msisdn: str) -> None:
    """Text a PIN reset code to ``msisdn`` if it has an open wallet; otherwise (or over the
    hourly quota) do nothing, silently. InvalidMsisdnError if it is not a mobile number.

    The code is committed before the SMS is handed to the gateway (persist, then call out).
    """
    msisdn = normalise_msisdn(msisdn)
    sub = find_by_msisdn(ctx, msisdn)
    if sub is None:
        pins.burn_time()  # as long as hashing a code: timing tells nothing either
        return
    s, now = ctx.settings, ctx.clock.now_us()
    code = f"{secrets.randbelow(10**6):06d}"
    code_hash = pins.hash_pin(code, pins.pin_key(s.secret_key))
    with ctx.engine.begin() as conn:
        sent = conn.execute(select(func.count()).select_from(codes).where(
            codes.c.subscriber_id == sub.id, codes.c.purpose == PIN_RESET,
            codes.c.created_at > now - HOUR_US)).scalar_one()
        if sent >= s.sms_codes_per_hour:
            return
        conn.execute(update(codes).where(codes.c.subscriber_id == sub.id,
                                         codes.c.purpose == PIN_RESET,
                                         codes.c.used_at.is_(None)).values(used_at=now))
        conn.execute(codes.insert().values(
            subscriber_id=sub.id, purpose=PIN_RESET, code_hash=code_hash, attempts=0,
            expires_at=now + s.sms_code_ttl_s * 1_000_000, created_at=now))
    minutes = max(1, s.sms_code_ttl_s // 60)
    ctx.sms.send(msisdn, f"[paycell] Your PIN reset code is {code}. It expires in {minutes} "
                         "minutes. Never tell it to anyone, not even to us.")


def confirm_pin_reset(ctx: Context, msisdn: str, code: str, new_pin: str) -> None:
    """Set a new PIN with the code texted by :func:`request_pin_reset`. The PIN lock and
    failure count are cleared and every session is revoked.

    Raises PinTrivialError for a trivial new PIN (before the code is tried) and
    CodeInvalidError for a wrong (``remaining_tries``), expired or used-up code, or a number
    without a wallet (the same answer, to tell nobody which numbers have one).
    """
    msisdn = normalise_msisdn(msisdn)
    check_pin(new_pin, msisdn)
    sub = find_by_msisdn(ctx, msisdn)
    invalid = CodeInvalidError("the code is wrong, expired or used up: ask for a new one")
    if sub is None:
        pins.burn_time()
        raise invalid
    now = ctx.clock.now_us()
    with ctx.engine.connect() as conn:
        row = conn.execute(select(codes).where(
            codes.c.subscriber_id == sub.id, codes.c.purpose == PIN_RESET,
            codes.c.used_at.is_(None)).order_by(codes.c.id.desc()).limit(1)).first()
    if row is None or row.expires_at <= now:
        raise invalid
    right = pins.pin_matches(row.code_hash, code.strip(), pins.pin_key(ctx.settings.secret_key))
    limit = ctx.settings.sms_code_max_attempts
    with ctx.engine.begin() as conn:
        cur = conn.execute(select(codes).where(codes.c.id == row.id).with_for_update()).one()
        if cur.used_at is not None or cur.attempts >= limit:
            raise invalid
        if right:
            conn.execute(update(codes).where(codes.c.id == row.id).values(used_at=now))
            set_pin(conn, sub.id, new_pin, "subscriber", now, "pin_reset",
                    pins.pin_key(ctx.settings.secret_key))
            return
        attempts = cur.attempts + 1
        conn.execute(update(codes).where(codes.c.id == row.id).values(
            attempts=attempts, used_at=now if attempts >= limit else None))
        if attempts >= limit:
            record_event(conn, sub.id, "reset_code_spent", "system", now,
                         f"{limit} wrong codes")
    raise CodeInvalidError("wrong code", remaining_tries=limit - attempts)
