"""Subscribers' use cases: open a wallet, look it up, check and change the PIN.

Each public function owns its transaction(s). KYC upgrade, freeze and close are in
``lifecycle.py``; the limits that guard money movements in ``limits.py``; sessions in
``tokens.py``; SMS codes in ``codes.py``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import phonenumbers
from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.exc import IntegrityError

from paycell.clock import rfc3339
from paycell.context import Context
from paycell.ledger import chart
from paycell.subscribers import hooks, pins
from paycell.subscribers.errors import (
    AccountHasPendingHoldsError,
    BalanceCapExceededError,
    ClosePayoutPendingError,
    CredentialsInvalidError,
    IdNumberInvalidError,
    InvalidMsisdnError,
    LimitExceededError,
    MsisdnRegisteredError,
    PinInvalidError,
    PinLockedError,
    PinTrivialError,
    SubscriberClosedError,
    SubscriberFrozenError,
    SubscriberNotFoundError,
)
from paycell.subscribers.tables import events, sessions, subscribers

__all__ = [
    "AccountHasPendingHoldsError", "BalanceCapExceededError", "ClosePayoutPendingError",
    "CredentialsInvalidError", "InvalidMsisdnError", "LimitExceededError",
    "MsisdnRegisteredError", "PinInvalidError", "PinLockedError", "PinTrivialError",
    "Subscriber", "SubscriberClosedError", "SubscriberFrozenError", "SubscriberNotFoundError",
    "change_pin", "find_by_msisdn", "get_subscriber", "normalise_msisdn", "open_account",
    "verify_pin",
]

DEFAULT_REGION = "CN"
MOBILE_TYPES = (phonenumbers.PhoneNumberType.MOBILE,
                phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


@dataclass(frozen=True)
class Subscriber:
    id: int
    msisdn: str
    state: str
    tier: int
    name: str | None
    wallet_account_id: int
    created_at: int


def normalise_msisdn(text: str) -> str:
    """``text`` as an E.164 mobile number (default region CN); InvalidMsisdnError if it is
    not one."""
    if not isinstance(text, str):
        raise InvalidMsisdnError(f"{text!r} is not a phone number")
    return _normalise_msisdn(text)


@functools.lru_cache(maxsize=100_000)
def _normalise_msisdn(text: str) -> str:
    # Remembered: parsing costs a fifth of a millisecond, and every payment to a number asks.
    try:
        number = phonenumbers.parse(text.strip(), DEFAULT_REGION)
    except (phonenumbers.NumberParseException, AttributeError) as exc:
        raise InvalidMsisdnError(f"{text!r} is not a phone number") from exc
    if (number.extension or not phonenumbers.is_valid_number(number)
            or phonenumbers.number_type(number) not in MOBILE_TYPES):
        raise InvalidMsisdnError(f"{text!r} is not a valid mobile number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_msisdn(msisdn: str) -> str:
    """+8613812345678 -> +86138****5678: enough to recognise, not to harvest."""
    return msisdn[:-8] + "****" + msisdn[-4:] if len(msisdn) > 10 else msisdn


# -- rows ------------------------------------------------------------------------------------
# Statements every payment runs, built once: SQLAlchemy then neither rebuilds them nor
# recomputes their cache keys per call.
_BY_ID = select(subscribers).where(subscribers.c.id == bindparam("sid"))
_LOCK_BY_ID = _BY_ID.with_for_update()
_OPEN_BY_MSISDN = select(subscribers).where(subscribers.c.msisdn == bindparam("msisdn"),
                                            subscribers.c.state != "closed")


def lock_row(conn: Connection, subscriber_id: int) -> Any:
    """The subscriber's row, locked for this transaction (FOR UPDATE on PostgreSQL; SQLite's
    BEGIN IMMEDIATE already serialises writers). SubscriberNotFoundError if there is none."""
    row = conn.execute(_LOCK_BY_ID, {"sid": subscriber_id}).first()
    if row is None:
        raise SubscriberNotFoundError(f"subscriber {subscriber_id} does not exist")
    return row


def record_event(conn: Connection, subscriber_id: int, kind: str, actor: str, now: int,
                 reason: str | None = None) -> None:
    conn.execute(events.insert().values(subscriber_id=subscriber_id, kind=kind, actor=actor,
                                        reason=reason, created_at=now))


def revoke_sessions(conn: Connection, subscriber_id: int, reason: str, now: int) -> int:
    """Revoke every live session of the subscriber (PIN change or reset, close)."""
    return conn.execute(update(sessions).where(sessions.c.subscriber_id == subscriber_id,
                                               sessions.c.revoked_at.is_(None))
                        .values(revoked_at=now, revoked_reason=reason)).rowcount or 0


def _to_subscriber(row: Any) -> Subscriber:
    return Subscriber(id=row.id, msisdn=row.msisdn, state=row.state, tier=row.tier,
                      name=row.name, wallet_account_id=row.wallet_account_id,
                      created_at=row.created_at)


def subscriber_of(ctx: Context, row: Any) -> Subscriber:
    """The subscriber a row of ``subscribers`` (or a join carrying its columns) holds.

    A subscriber whose wallet account is not recorded yet (open_account's second step
    did not run): open it now. Idempotent: the ledger account is found by name."""
    if row.wallet_account_id is not None:
        return _to_subscriber(row)
    acct = chart.open_account(ctx.ledger, f"wallet:{row.id}", chart.Code.WALLET,
                              owner_ref=f"subscriber:{row.id}")
    with ctx.engine.begin() as conn:
        conn.execute(update(subscribers).where(subscribers.c.id == row.id,
                                               subscribers.c.wallet_account_id.is_(None))
                     .values(wallet_account_id=acct.id))
        row = conn.execute(select(subscribers).where(subscribers.c.id == row.id)).one()
    return _to_subscriber(row)


def get_subscriber(ctx: Context, subscriber_id: int) -> Subscriber:
    """The subscriber with this id, in any state; SubscriberNotFoundError if none."""
    with ctx.engine.connect() as conn:
        row = conn.execute(select(subscribers).where(subscribers.c.id == subscriber_id)).first()
    if row is None:
        raise SubscriberNotFoundError(f"subscriber {subscriber_id} does not exist")
    return subscriber_of(ctx, row)


def find_by_msisdn(ctx: Context, msisdn: str) -> Subscriber | None:
    """The current (not closed) owner of ``msisdn``, or None. InvalidMsisdnError if it is
    not a mobile number."""
    msisdn = normalise_msisdn(msisdn)
    with ctx.engine.connect() as conn:
        row = conn.execute(_OPEN_BY_MSISDN, {"msisdn": msisdn}).first()
    return None if row is None else subscriber_of(ctx, row)


def history_by_msisdn(ctx: Context, msisdn: str) -> list[Subscriber]:
    """Every subscriber who ever held ``msisdn``, newest first (operators' look-up)."""
    msisdn = normalise_msisdn(msisdn)
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(subscribers).where(subscribers.c.msisdn == msisdn)
                            .order_by(subscribers.c.id.desc())).all()
    return [subscriber_of(ctx, r) for r in rows]


# -- open ------------------------------------------------------------------------------------
def check_pin(pin: str, msisdn: str) -> None:
    reason = pins.trivial_reason(pin, msisdn)
    if reason:
        raise PinTrivialError(reason)


def normalise_id_number(text: str) -> str:
    """An ID-document number: 6 to 32 letters and digits; a PRC resident ID (18 characters)
    must carry a valid ISO 7064 MOD 11-2 check character."""
    number = "".join(text.split()).upper()
    if not (6 <= len(number) <= 32 and number.isascii() and number.isalnum()):
        raise IdNumberInvalidError("an ID-document number is 6 to 32 letters and digits")
    if len(number) == 18 and number[:17].isdigit():
        weights = [pow(2, 17 - i, 11) for i in range(17)]
        check = "10X98765432"[sum(int(d) * w for d, w in zip(number, weights, strict=False))
                              % 11]
        if number[17] != check:
            raise IdNumberInvalidError("the resident ID number's check digit is wrong")
    return number


def id_number_hash(ctx: Context, number: str) -> str:
    return hmac.new(ctx.settings.secret_key.encode(), f"id:{number}".encode(),
                    hashlib.sha256).hexdigest()


def open_account(ctx: Context, msisdn: str, pin: str, *, name: str | None = None,
                 id_number: str | None = None) -> Subscriber:
    """Open a wallet for ``msisdn`` with a payment PIN: tier 0, or tier 1 with a name and an
    ID-document number. The wallet is the ledger account ``wallet:{id}``.

    Raises InvalidMsisdnError, PinTrivialError, IdNumberInvalidError, MsisdnRegisteredError
    (an open wallet has the number). A closed wallet's number may be opened again: the new
    owner gets a new subscriber and a new, empty wallet. Nothing is written on a refusal.
    Then the ``hooks.after_open`` run (e.g. money sent to this number before it had a wallet
    is delivered).
    """
    msisdn = normalise_msisdn(msisdn)
    check_pin(pin, msisdn)
    kyc: dict[str, Any] = {}
    if id_number is not None or name is not None:
        if not (name and name.strip()) or id_number is None:
            raise IdNumberInvalidError("a named wallet needs both a name and an ID number")
        number = normalise_id_number(id_number)
        kyc = {"tier": 1, "name": name.strip()[:200], "id_number_hash": id_number_hash(ctx,
               number), "id_number_last4": number[-4:]}
    now = ctx.clock.now_us()
    pin_hash = pins.hash_pin(pin, pins.pin_key(ctx.settings.secret_key))
    try:
        with ctx.engine.begin() as conn:
            sid = conn.execute(subscribers.insert().values(
                msisdn=msisdn, state="active", pin_hash=pin_hash, created_at=now,
                updated_at=now, **kyc).returning(subscribers.c.id)).scalar_one()
            record_event(conn, sid, "opened", "subscriber", now,
                         f"tier {kyc.get('tier', 0)}")
    except IntegrityError:
        with ctx.engine.connect() as conn:
            row = conn.execute(select(subscribers).where(
                subscribers.c.msisdn == msisdn, subscribers.c.state != "closed")).first()
        # A retry of an open that stopped half-way (no wallet yet) by the same person.
        if row is None or row.wallet_account_id is not None or not pins.pin_matches(
                row.pin_hash, pin, pins.pin_key(ctx.settings.secret_key)):
            raise MsisdnRegisteredError(f"{msisdn} already has a wallet") from None
        opened = subscriber_of(ctx, row)
    else:
        opened = get_subscriber(ctx, sid)
    hooks.run_after_open(ctx, opened)
    return opened


# -- PIN -------------------------------------------------------------------------------------
def verify_pin(ctx: Context, subscriber_id: int, pin: str) -> None:
    """Check the subscriber's payment PIN. Returns None if right.

    Raises PinLockedError while PIN use is locked (``locked_until``), PinInvalidError
    (``remaining_tries``) for a wrong PIN, which is counted: the ``pin_max_failures``-th in a
    row (default 5) locks PIN use for ``pin_lock_s`` (30 min) and raises PinLockedError.
    A right PIN resets the count. SubscriberClosedError for a closed wallet.
    """
    with ctx.engine.connect() as conn:
        row = conn.execute(_BY_ID, {"sid": subscriber_id}).first()
    if row is None:
        raise SubscriberNotFoundError(f"subscriber {subscriber_id} does not exist")
    if row.state == "closed":
        raise SubscriberClosedError("this wallet is closed")
    now = ctx.clock.now_us()
    _raise_if_locked(pins.PinState(row.pin_failures, row.pin_locked_until), now)
    key = pins.pin_key(ctx.settings.secret_key)
    if (not row.pin_failures and not pins.needs_rehash(row.pin_hash)
            and pins.pin_matches(row.pin_hash, pin, key)):
        return  # the common case reads only: on SQLite it takes no write lock
    # Anything to write (a failure counted, a count reset, an old hash replaced): the batched
    # use cases' rules, on the row locked, answered as it stands now.
    from paycell.subscribers.batch import Wallets  # batch imports this module

    refused: PinInvalidError | PinLockedError | None = None
    with ctx.engine.begin() as conn:
        w = Wallets(conn, ctx.settings, now, ids=[subscriber_id])
        try:
            w.verify_pin(subscriber_id, pin)
        except (PinInvalidError, PinLockedError) as exc:
            refused = exc  # the count is written and committed, then the refusal raised
        w.write(conn)
    if refused is not None:
        raise refused


def _raise_if_locked(state: pins.PinState, now: int) -> None:
    if pins.locked(state, now):
        assert state.locked_until is not None
        raise PinLockedError("too many wrong PINs: PIN use is locked for now",
                             locked_until=rfc3339(state.locked_until))


def set_pin(conn: Connection, subscriber_id: int, new_pin: str, actor: str, now: int,
            kind: str, key: bytes) -> None:
    """Store a new PIN (already checked) in the caller's transaction: the failure count and
    lock are cleared and every session is revoked. ``key``: ``pins.pin_key(secret_key)``."""
    conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id).values(
        pin_hash=pins.hash_pin(new_pin, key), pin_failures=0, pin_locked_until=None,
        updated_at=now))
    revoke_sessions(conn, subscriber_id, kind, now)
    record_event(conn, subscriber_id, kind, actor, now)


def change_pin(ctx: Context, subscriber_id: int, old_pin: str, new_pin: str) -> None:
    """Change the PIN, given the old one (counted like any PIN check). The new PIN must not
    be trivial nor the old one. Every session is revoked: the subscriber logs in again."""
    sub = get_subscriber(ctx, subscriber_id)
    check_pin(new_pin, sub.msisdn)
    verify_pin(ctx, subscriber_id, old_pin)
    if new_pin == old_pin:
        raise PinTrivialError("the new PIN is the old one")
    with ctx.engine.begin() as conn:
        lock_row(conn, subscriber_id)
        set_pin(conn, subscriber_id, new_pin, "subscriber", ctx.clock.now_us(), "pin_changed",
                pins.pin_key(ctx.settings.secret_key))
