"""NFC SIM payment cards: issue one bound to a wallet, activate, lock and unlock, report lost
(blocked at once), terminate; the ATC guard online authorisation uses.

A card is the payment applet on a subscriber's SIM (ICCID): PAN (our BIN, the card's
number, a Luhn digit: 19 digits), PSN, and a key derived from the issuer master key in the
key store (never stored). Each card has its own CARD_ECASH ledger account, the liability
for what its offline e-cash purse holds. States::

    issued -> active <-> locked;  issued|active|locked -> lost;  any but terminated ->
    terminated

A wallet sees only its own cards (any other id is ``nfc_card_not_found``). After a card is
reported lost and committed, the ``on_lost`` hooks run (OTA queues a lock job there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from paycell.context import Context
from paycell.errors import ConflictError, InvalidRequestError, NotFoundError
from paycell.funding.cash_common import locking
from paycell.ledger import chart
from paycell.subscribers.errors import SubscriberClosedError, SubscriberFrozenError
from paycell.subscribers.service import Subscriber, lock_row

log = logging.getLogger(__name__)

metadata = MetaData()
BIGID = BigInteger().with_variant(Integer, "sqlite")

# Created only by migration 0010_onsite_cards; this mirrors it for queries.
onsite_cards = Table(
    "onsite_cards", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("subscriber_id", BigInteger, nullable=False),
    Column("wallet_account_id", BigInteger, nullable=False),
    Column("iccid", String(20), nullable=False, unique=True),
    Column("pan", String(19), unique=True),  # set in the issuing transaction
    Column("psn", String(2), nullable=False),
    Column("state", String(12), nullable=False),
    Column("last_atc", Integer, nullable=False),  # highest ATC seen online
    Column("ecash_account_id", BigInteger, nullable=False),
    Column("ecash_limit_fen", BigInteger, nullable=False),
    Column("hot_listed", Boolean, nullable=False),
    Column("block_reason", String(40)),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("activated_at", BigInteger),
    Column("blocked_at", BigInteger),  # reported lost or hot-listed
    Column("terminated_at", BigInteger),
    Index("ix_onsite_cards_subscriber", "subscriber_id"),
)

onsite_card_events = Table(
    "onsite_card_events", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("card_id", BIGID, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("actor", String(80), nullable=False),
    Column("reason", String(200)),
    Column("at", BigInteger, nullable=False),
    Index("ix_onsite_card_events_card", "card_id", "id"),
)

BIN = "623688"  # the platform's issuer identification number (a UnionPay-style 62 BIN)
PSN = "01"
STATES = ("issued", "active", "locked", "lost", "terminated")
LIVE = ("issued", "active", "locked", "lost")
# action -> (states it applies to, resulting state)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "activate": (("issued",), "active"),
    "lock": (("active",), "locked"),
    "unlock": (("locked",), "active"),
    "report_lost": (("issued", "active", "locked"), "lost"),
    "terminate": (("issued", "active", "locked", "lost"), "terminated"),
}


# -- errors -----------------------------------------------------------------------------------
class NfcCardNotFoundError(NotFoundError):
    code = "nfc_card_not_found"


class NfcCardStateError(ConflictError):
    """The action does not apply to the card's state (``state``, ``action``)."""

    code = "nfc_card_state_invalid"


class NfcCardExistsError(ConflictError):
    """The wallet already has a card that is not terminated (``card_id``)."""

    code = "nfc_card_exists"


class IccidTakenError(ConflictError):
    code = "iccid_taken"


class IccidInvalidError(InvalidRequestError):
    code = "iccid_invalid"


class AtcReplayedError(ConflictError):
    """The ATC is not above the highest one seen online: a replay (``last_atc``)."""

    code = "atc_replayed"


# -- the card ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Card:
    id: int
    subscriber_id: int
    wallet_account_id: int
    iccid: str
    pan: str
    psn: str
    state: str
    last_atc: int
    ecash_account_id: int
    ecash_limit_fen: int
    hot_listed: bool
    block_reason: str | None
    created_at: int
    updated_at: int
    activated_at: int | None
    blocked_at: int | None
    terminated_at: int | None

    @property
    def pan_masked(self) -> str:
        return f"{self.pan[:6]}{'*' * (len(self.pan) - 10)}{self.pan[-4:]}"


def _card(row: Any) -> Card:
    return Card(row.id, row.subscriber_id, row.wallet_account_id, row.iccid, row.pan, row.psn,
                row.state, row.last_atc, row.ecash_account_id, row.ecash_limit_fen,
                bool(row.hot_listed), row.block_reason, row.created_at, row.updated_at,
                row.activated_at, row.blocked_at, row.terminated_at)


OnLost = Callable[[Context, Card], object]
on_lost: list[OnLost] = []  # fn(ctx, card) after a loss is committed; failures are logged


def luhn_digit(partial: str) -> str:
    """The Luhn check digit to append to ``partial``."""
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def make_pan(card_id: int) -> str:
    """BIN || the card id in 12 digits || Luhn: 19 digits."""
    body = f"{BIN}{card_id:012d}"
    return body + luhn_digit(body)


def next_state(state: str, action: str) -> str:
    """The state ``action`` leads to from ``state``; NfcCardStateError if it does not apply.
    Pure: the whole state machine."""
    allowed, target = TRANSITIONS[action]
    if state not in allowed:
        raise NfcCardStateError(f"{action.replace('_', ' ')} does not apply to a card that "
                                f"is {state}", state=state, action=action)
    return target


def normalise_iccid(text: str) -> str:
    """An ICCID: 19 or 20 digits beginning 89 (telecom), the last a Luhn digit."""
    iccid = "".join(text.split())
    if not (iccid.isascii() and iccid.isdigit() and len(iccid) in (19, 20)
            and iccid.startswith("89") and luhn_digit(iccid[:-1]) == iccid[-1]):
        raise IccidInvalidError("an ICCID is 19 or 20 digits starting 89 with a Luhn digit")
    return iccid


# -- reads ------------------------------------------------------------------------------------
def _one(conn: Connection, stmt: Any) -> Any:
    return conn.execute(stmt).first()


def _run(ctx_or_conn: Context | Connection | Engine, stmt: Any) -> Any:
    if isinstance(ctx_or_conn, Connection):
        return _one(ctx_or_conn, stmt)
    engine = ctx_or_conn.engine if isinstance(ctx_or_conn, Context) else ctx_or_conn
    with engine.connect() as conn:
        return _one(conn, stmt)


def get_card(ctx_or_conn: Context | Connection | Engine, card_id: int, *,
             subscriber_id: int | None = None) -> Card:
    """The card, in any state (only if it is ``subscriber_id``'s, when given);
    NfcCardNotFoundError otherwise."""
    stmt = select(onsite_cards).where(onsite_cards.c.id == card_id)
    if subscriber_id is not None:
        stmt = stmt.where(onsite_cards.c.subscriber_id == subscriber_id)
    row = _run(ctx_or_conn, stmt)
    if row is None:
        raise NfcCardNotFoundError(f"there is no NFC card {card_id}")
    return _card(row)


def find_by_pan(ctx_or_conn: Context | Connection | Engine, pan: str,
                psn: str | None = None) -> Card | None:
    """The card with this PAN (and PSN, if given), in any state, or None."""
    stmt = select(onsite_cards).where(onsite_cards.c.pan == pan)
    if psn is not None:
        stmt = stmt.where(onsite_cards.c.psn == psn)
    row = _run(ctx_or_conn, stmt)
    return None if row is None else _card(row)


def find_by_iccid(ctx_or_conn: Context | Connection | Engine, iccid: str) -> Card | None:
    row = _run(ctx_or_conn, select(onsite_cards).where(onsite_cards.c.iccid == iccid))
    return None if row is None else _card(row)


def list_cards(ctx: Context, *, subscriber_id: int | None = None, state: str | None = None,
               after_id: int | None = None, limit: int = 100) -> list[Card]:
    """Cards by id, optionally one wallet's or in one state; ``limit + 1`` rows at most are
    read so a caller can tell there is a next page."""
    stmt = select(onsite_cards).order_by(onsite_cards.c.id).limit(limit + 1)
    if subscriber_id is not None:
        stmt = stmt.where(onsite_cards.c.subscriber_id == subscriber_id)
    if state is not None:
        stmt = stmt.where(onsite_cards.c.state == state)
    if after_id is not None:
        stmt = stmt.where(onsite_cards.c.id > after_id)
    with ctx.engine.connect() as conn:
        return [_card(r) for r in conn.execute(stmt).all()]


def card_events(ctx: Context, card_id: int) -> list[dict[str, Any]]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(onsite_card_events)
                            .where(onsite_card_events.c.card_id == card_id)
                            .order_by(onsite_card_events.c.id)).all()
    return [{"kind": r.kind, "actor": r.actor, "reason": r.reason, "at": r.at} for r in rows]


def _event(conn: Connection, card_id: int, kind: str, actor: str, now: int,
           reason: str | None = None) -> None:
    conn.execute(onsite_card_events.insert().values(card_id=card_id, kind=kind,
                                                    actor=actor[:80], reason=reason, at=now))


# -- issue ------------------------------------------------------------------------------------
def issue_card(ctx: Context, subscriber: Subscriber, iccid: str, *,
               actor: str = "operator") -> Card:
    """Issue an NFC payment card on the SIM ``iccid`` bound to the subscriber's wallet:
    state ``issued``, PAN assigned, a CARD_ECASH account opened for its purse. Idempotent:
    issuing the same ICCID to the same wallet again returns the card.

    IccidInvalidError, IccidTakenError (another wallet's SIM, or a terminated card's),
    NfcCardExistsError (the wallet has a live card), SubscriberFrozenError,
    SubscriberClosedError.
    """
    iccid = normalise_iccid(iccid)
    found = find_by_iccid(ctx, iccid)
    if found is not None:
        if found.subscriber_id == subscriber.id and found.state != "terminated":
            return found
        raise IccidTakenError(f"SIM {iccid} already carries a card")
    # The purse account is named by the ICCID, so a retry finds the same one.
    purse = chart.open_account(ctx.ledger, f"card_ecash:{iccid}", chart.Code.CARD_ECASH,
                               owner_ref=f"subscriber:{subscriber.id}")
    now = ctx.clock.now_us()
    try:
        with ctx.engine.begin() as conn:
            sub = lock_row(conn, subscriber.id)  # one live card per wallet
            if sub.state == "frozen":
                raise SubscriberFrozenError("the wallet is frozen")
            if sub.state == "closed":
                raise SubscriberClosedError("the wallet is closed")
            live = conn.execute(select(onsite_cards.c.id).where(
                onsite_cards.c.subscriber_id == subscriber.id,
                onsite_cards.c.state.in_(LIVE))).scalar()
            if live is not None:
                raise NfcCardExistsError("the wallet already has an NFC card; terminate it "
                                         "first", card_id=live)
            inserted = conn.execute(onsite_cards.insert().values(
                subscriber_id=subscriber.id, wallet_account_id=sub.wallet_account_id,
                iccid=iccid, psn=PSN, state="issued", last_atc=0, ecash_account_id=purse.id,
                ecash_limit_fen=ctx.settings.ecash_purse_limit_fen, hot_listed=False,
                created_at=now, updated_at=now)).inserted_primary_key
            assert inserted is not None
            card_id = int(inserted[0])
            conn.execute(update(onsite_cards).where(onsite_cards.c.id == card_id)
                         .values(pan=make_pan(card_id)))
            _event(conn, card_id, "issued", actor, now)
    except IntegrityError:
        found = find_by_iccid(ctx, iccid)  # a concurrent retry issued it
        if found is not None and found.subscriber_id == subscriber.id:
            return found
        raise IccidTakenError(f"SIM {iccid} already carries a card") from None
    return get_card(ctx, card_id)


# -- lifecycle --------------------------------------------------------------------------------
_NOW = object()  # stands for "the transaction's now" in the values of a transition


def _transition(ctx: Context, card_id: int, action: str, actor: str, *,
                subscriber_id: int | None = None, reason: str | None = None,
                **values: Any) -> tuple[Card, bool]:
    """Apply ``action`` under the row lock; (card, changed). Repeating an action whose
    target state the card is already in changes nothing (idempotent)."""
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        row = conn.execute(locking(conn, select(onsite_cards).where(
            onsite_cards.c.id == card_id))).first()
        if row is None or (subscriber_id is not None and row.subscriber_id != subscriber_id):
            raise NfcCardNotFoundError(f"there is no NFC card {card_id}")
        target = TRANSITIONS[action][1]
        if row.state == target:
            return _card(row), False
        next_state(row.state, action)
        conn.execute(update(onsite_cards).where(onsite_cards.c.id == card_id)
                     .values(state=target, updated_at=now,
                             **{k: (now if v is _NOW else v) for k, v in values.items()}))
        _event(conn, card_id, action, actor, now, reason)
        card = get_card(conn, card_id)
    return card, True


def activate(ctx: Context, card_id: int, *, actor: str = "operator",
             subscriber_id: int | None = None) -> Card:
    """issued -> active (the applet is personalised and the holder turned it on).
    Idempotent. NfcCardNotFoundError, NfcCardStateError."""
    return _transition(ctx, card_id, "activate", actor, subscriber_id=subscriber_id,
                       activated_at=_NOW)[0]


def lock(ctx: Context, card_id: int, *, actor: str = "operator",
         subscriber_id: int | None = None, reason: str | None = None) -> Card:
    """active -> locked: refused online and by terminals until unlocked. Idempotent."""
    return _transition(ctx, card_id, "lock", actor, subscriber_id=subscriber_id,
                       reason=reason)[0]


def unlock(ctx: Context, card_id: int, *, actor: str = "operator",
           subscriber_id: int | None = None) -> Card:
    """locked -> active. Idempotent. NfcCardStateError for a lost or terminated card."""
    return _transition(ctx, card_id, "unlock", actor, subscriber_id=subscriber_id)[0]


def report_lost(ctx: Context, card_id: int, actor: str, *,
                subscriber_id: int | None = None, reason: str | None = None) -> Card:
    """Block the card at once: state ``lost`` and on the hot list, committed before this
    returns, so the next authorisation is refused. Then the ``on_lost`` hooks run (once,
    on the first report; a failing hook is logged, the block stands). Idempotent."""
    card, changed = _transition(ctx, card_id, "report_lost", actor,
                                subscriber_id=subscriber_id, reason=reason,
                                hot_listed=True, block_reason="lost", blocked_at=_NOW)
    if changed:
        for fn in list(on_lost):
            try:
                fn(ctx, card)
            except Exception:
                log.exception("on_lost hook %s failed for card %s",
                              getattr(fn, "__name__", fn), card.id)
    return card


def terminate(ctx: Context, card_id: int, *, actor: str = "operator",
              subscriber_id: int | None = None, reason: str | None = None) -> Card:
    """Any live state -> terminated, for good (the SIM may be given a new card). The purse
    account stays for e-cash clearing still in flight. Idempotent."""
    return _transition(ctx, card_id, "terminate", actor, subscriber_id=subscriber_id,
                       reason=reason, terminated_at=_NOW)[0]


def hot_list(conn: Connection, card_id: int, reason: str, now: int) -> None:
    """Put the card on the hot list inside the caller's transaction (e-cash over-spend)."""
    conn.execute(update(onsite_cards).where(onsite_cards.c.id == card_id).values(
        hot_listed=True, block_reason=reason[:40], blocked_at=now, updated_at=now))
    _event(conn, card_id, "hot_listed", "system", now, reason)


# -- the ATC guard ----------------------------------------------------------------------------
def check_and_advance_atc(conn: Connection, card_id: int, atc: int) -> Card:
    """Inside the caller's transaction, with the card's row locked: AtcReplayedError if
    ``atc`` is not above the highest ATC seen online, else record it. Returns the card as
    it was read (its state for the caller to check). NfcCardNotFoundError."""
    row = conn.execute(locking(conn, select(onsite_cards).where(
        onsite_cards.c.id == card_id))).first()
    if row is None:
        raise NfcCardNotFoundError(f"there is no NFC card {card_id}")
    if atc <= row.last_atc:
        raise AtcReplayedError(f"ATC {atc} is not above {row.last_atc}: replayed",
                               last_atc=row.last_atc)
    conn.execute(update(onsite_cards).where(onsite_cards.c.id == card_id)
                 .values(last_atc=atc))
    return _card(row)
