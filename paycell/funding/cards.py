"""Bank cards: bind (Luhn, the bank texts the holder a code, confirm), list, choose the
default, unbind.

Only the bank's token, the last four digits and the bank's name are stored; the card
number passes through to the bank and is forgotten. A subscriber sees and uses only their
own cards: any other id is ``card_not_found``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import IntegrityError

from paycell.context import Context
from paycell.funding.common import record_id
from paycell.funding.errors import (
    BankUnavailableError,
    CardCodeInvalidError,
    CardNotFoundError,
    CardNumberInvalidError,
    CardRejectedError,
    CardStateError,
    NoDefaultCardError,
)
from paycell.funding.tables import cards
from paycell.gateways.bank import BankGateway, Verification, luhn_valid
from paycell.subscribers.service import Subscriber, lock_row

LISTED = ("verifying", "active")


@dataclass(frozen=True)
class Card:
    id: str
    subscriber_id: int
    state: str  # verifying | active | removed | failed
    bank: str | None
    bank_name: str | None
    last4: str
    is_default: bool
    reason: str | None
    created_at: int
    verified_at: int | None


def _card(row: Any) -> Card:
    return Card(row.id, row.subscriber_id, row.state, row.bank, row.bank_name, row.last4,
                bool(row.is_default), row.reason, row.created_at, row.verified_at)


def require_bank(ctx: Context) -> BankGateway:
    if ctx.bank is None:
        raise BankUnavailableError("no bank is configured (PAYCELL_BANK_URL)")
    return ctx.bank


def _row(conn: Connection, subscriber_id: int, card_id: str) -> Any:
    row = conn.execute(select(cards).where(cards.c.id == card_id,
                                           cards.c.subscriber_id == subscriber_id)).first()
    if row is None:
        raise CardNotFoundError(f"you have no card {card_id}")
    return row


def get_card(ctx: Context, subscriber_id: int, card_id: str) -> Card:
    """One of the subscriber's cards, in any state; CardNotFoundError otherwise."""
    with ctx.engine.connect() as conn:
        return _card(_row(conn, subscriber_id, card_id))


def list_cards(ctx: Context, subscriber_id: int) -> list[Card]:
    """The subscriber's cards being verified or bound, oldest first."""
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(cards).where(cards.c.subscriber_id == subscriber_id,
                                                cards.c.state.in_(LISTED))
                            .order_by(cards.c.created_at, cards.c.id)).all()
    return [_card(r) for r in rows]


def default_card(ctx_or_conn: Context | Connection | Engine, subscriber_id: int
                 ) -> Card | None:
    """The subscriber's default card (always an active one), or None."""
    stmt = select(cards).where(cards.c.subscriber_id == subscriber_id,
                               cards.c.is_default.is_(True), cards.c.state == "active")
    if isinstance(ctx_or_conn, Connection):
        row = ctx_or_conn.execute(stmt).first()
    else:
        engine = ctx_or_conn.engine if isinstance(ctx_or_conn, Context) else ctx_or_conn
        with engine.connect() as conn:
            row = conn.execute(stmt).first()
    return None if row is None else _card(row)


def usable_card(ctx: Context, subscriber_id: int, card_id: str | None) -> tuple[Card, str]:
    """The card to pay from or to (the default one if ``card_id`` is None) and its token.
    CardNotFoundError, NoDefaultCardError, or CardStateError if it is not active."""
    with ctx.engine.connect() as conn:
        if card_id is None:
            row = conn.execute(select(cards).where(
                cards.c.subscriber_id == subscriber_id, cards.c.is_default.is_(True),
                cards.c.state == "active")).first()
            if row is None:
                raise NoDefaultCardError("bind a bank card first, or say which card to use")
        else:
            row = _row(conn, subscriber_id, card_id)
    if row.state != "active" or row.token is None:
        raise CardStateError(f"card {row.id} is {row.state}, not active", state=row.state)
    return _card(row), str(row.token)


def token_of(conn: Connection, card_id: str) -> str | None:
    return conn.execute(select(cards.c.token).where(cards.c.id == card_id)).scalar()


# -- binding -----------------------------------------------------------------------------------
def add_card(ctx: Context, subscriber: Subscriber, card_number: str, *,
             key: str | None = None) -> Card:
    """Start binding a card: the bank texts a code to the subscriber's number; the card is
    ``verifying`` until :func:`confirm_card`. Idempotent per ``key``.

    CardNumberInvalidError (Luhn), CardRejectedError (``reason`` from the bank, e.g.
    card_blocked; the card is ``failed``), BankUnavailableError (no answer: try again).
    """
    bank = require_bank(ctx)
    pan = "".join(ch for ch in card_number if ch not in " -")
    if not luhn_valid(pan):
        raise CardNumberInvalidError("that is not a card number (check the digits)")
    cid = record_id("card_", subscriber.id, key)
    now = ctx.clock.now_us()
    with ctx.engine.connect() as conn:
        found = conn.execute(select(cards).where(cards.c.id == cid)).first()
    if found is not None and found.state != "verifying":
        return _existing_outcome(found)
    if found is None:
        try:
            with ctx.engine.begin() as conn:
                conn.execute(cards.insert().values(
                    id=cid, subscriber_id=subscriber.id, state="verifying", last4=pan[-4:],
                    is_default=False, created_at=now, updated_at=now))
        except IntegrityError:
            pass  # a concurrent retry of the same request inserted it
    v = bank.start_verification(reference=f"card:{cid}", pan=pan,
                                holder_msisdn=subscriber.msisdn)
    if v.status == "code_sent":
        _update(ctx, cid, bank=v.bank, bank_name=v.bank_name)
        return get_card(ctx, subscriber.id, cid)
    if v.status == "rejected":
        _fail(ctx, cid, v)
    raise BankUnavailableError("the bank did not answer; try again in a moment")


def _existing_outcome(row: Any) -> Card:
    if row.state == "failed":
        raise CardRejectedError(f"the bank refused the card: {row.reason}", reason=row.reason)
    return _card(row)


def _update(ctx: Context, card_id: str, **values: Any) -> None:
    with ctx.engine.begin() as conn:
        conn.execute(update(cards).where(cards.c.id == card_id)
                     .values(updated_at=ctx.clock.now_us(), **values))


def _fail(ctx: Context, card_id: str, v: Verification) -> None:
    reason = (v.reason or "rejected")[:60]
    with ctx.engine.begin() as conn:
        conn.execute(update(cards).where(cards.c.id == card_id, cards.c.state == "verifying")
                     .values(state="failed", reason=reason, bank=v.bank,
                             bank_name=v.bank_name, updated_at=ctx.clock.now_us()))
    raise CardRejectedError(f"the bank refused the card: {reason}", reason=reason)


def confirm_card(ctx: Context, subscriber: Subscriber, card_id: str, code: str) -> Card:
    """Finish binding with the code the bank texted. The first bound card becomes the
    default. Idempotent (confirming an active card returns it).

    CardNotFoundError, CardStateError (not being verified), CardCodeInvalidError
    (``tries_left``), CardRejectedError (too many wrong codes, expired: bind again),
    BankUnavailableError.
    """
    bank = require_bank(ctx)
    card = get_card(ctx, subscriber.id, card_id)
    if card.state == "active":
        return card
    if card.state != "verifying":
        raise CardStateError(f"card {card_id} is {card.state}", state=card.state)
    v = bank.confirm_verification(reference=f"card:{card_id}", code=code)
    if v.status == "verified" and v.token:
        now = ctx.clock.now_us()
        with ctx.engine.begin() as conn:
            lock_row(conn, subscriber.id)  # serialises the choice of the default card
            has_default = default_card(conn, subscriber.id) is not None
            conn.execute(update(cards).where(cards.c.id == card_id,
                                             cards.c.state == "verifying").values(
                state="active", token=v.token, bank=v.bank or card.bank,
                bank_name=v.bank_name or card.bank_name, is_default=not has_default,
                verified_at=now, updated_at=now))
        return get_card(ctx, subscriber.id, card_id)
    if v.status == "code_invalid":
        raise CardCodeInvalidError("wrong code", tries_left=v.tries_left)
    if v.status == "rejected":
        _fail(ctx, card_id, v)
    raise BankUnavailableError("the bank did not answer; try again in a moment")


def set_default(ctx: Context, subscriber: Subscriber, card_id: str) -> Card:
    """Make an active card the default (the previous default stops being one)."""
    with ctx.engine.begin() as conn:
        lock_row(conn, subscriber.id)
        row = _row(conn, subscriber.id, card_id)
        if row.state != "active":
            raise CardStateError(f"card {card_id} is {row.state}, not active", state=row.state)
        conn.execute(update(cards).where(cards.c.subscriber_id == subscriber.id,
                                         cards.c.is_default.is_(True), cards.c.id != card_id)
                     .values(is_default=False))
        conn.execute(update(cards).where(cards.c.id == card_id)
                     .values(is_default=True, updated_at=ctx.clock.now_us()))
    return get_card(ctx, subscriber.id, card_id)


def remove_card(ctx: Context, subscriber: Subscriber, card_id: str) -> Card:
    """Unbind a card: its token is forgotten. If it was the default, the most recently
    bound other active card becomes the default. CardNotFoundError for a removed card."""
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        lock_row(conn, subscriber.id)
        row = _row(conn, subscriber.id, card_id)
        if row.state == "removed":
            raise CardNotFoundError(f"card {card_id} is already removed")
        conn.execute(update(cards).where(cards.c.id == card_id).values(
            state="removed", token=None, is_default=False, removed_at=now, updated_at=now))
        if row.is_default:
            heir = conn.execute(select(cards.c.id).where(
                cards.c.subscriber_id == subscriber.id, cards.c.state == "active")
                .order_by(cards.c.verified_at.desc(), cards.c.id.desc()).limit(1)).scalar()
            if heir is not None:
                conn.execute(update(cards).where(cards.c.id == heir).values(is_default=True))
    return get_card(ctx, subscriber.id, card_id)
