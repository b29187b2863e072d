"""Transit e-cash (电子现金): loading a card's offline purse online, clearing the fares gates
approved offline, and the hot list. docs/onsite.md, "Transit e-cash".

- **Load (圈存)**: the card computes an ARQC over a load transaction (type ``60``); the
  platform verifies it and the ATC, checks the purse limit, moves wallet -> the card's
  CARD_ECASH account (``ECASH_LOAD``, transfer ``ecash-load:<card>:<atc>``) and answers the
  ARPC and an issuer script (PUT DATA 9F79, the new purse balance) the card applies.
- **Clearing**: a gate uploads the TCs it accepted offline. Each is verified; a (PAN, PSN,
  ATC) clears once whatever batch carries it again; CARD_ECASH -> the gate's merchant
  payable (``ECASH_CLEAR``, transfer ``ecash-clear:<pan>:<psn>:<atc>``). When a card has
  spent more than was loaded, what the purse still holds is cleared, the excess is recorded
  as fraud and the card goes on the hot list.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    func,
    or_,
    select,
    update,
)

from paycell.context import Context
from paycell.errors import ConflictError, ForbiddenError, InvalidRequestError
from paycell.funding.cash_common import AlreadyAppliedError, locking, post_recorded
from paycell.ledger import TransferRequest, TransferResult
from paycell.ledger.chart import TransferCode
from paycell.onsite import cards, emv
from paycell.onsite.keystore import KeyStore

log = logging.getLogger(__name__)

metadata = MetaData()
BIGID = BigInteger().with_variant(Integer, "sqlite")

# Created only by migration 0012_onsite_ecash_ota; this mirrors it for queries.
ecash_loads = Table(
    "ecash_loads", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("card_id", BigInteger, nullable=False),
    Column("atc", Integer, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("card_balance_fen", BigInteger, nullable=False),  # as the card reported it
    Column("new_balance_fen", BigInteger, nullable=False),  # what the script sets
    Column("arqc", String(16), nullable=False),
    Column("transfer_id", String(80), nullable=False),
    Column("created_by", String(80), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("card_id", "atc", name="uq_ecash_loads_card_atc"),
)
ecash_batches = Table(
    "ecash_batches", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("terminal_id", String(40), nullable=False),
    Column("merchant_id", BigInteger, nullable=False),
    Column("batch_ref", String(64)),
    Column("records", Integer, nullable=False),
    Column("cleared", Integer, nullable=False),
    Column("duplicates", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("cleared_fen", BigInteger, nullable=False),
    Column("excess_fen", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_ecash_batches_terminal", "terminal_id", "id"),
)
ecash_records = Table(
    "ecash_records", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("batch_id", BigInteger, nullable=False),
    Column("terminal_id", String(40), nullable=False),
    Column("merchant_id", BigInteger, nullable=False),
    Column("card_id", BigInteger, nullable=False),
    Column("pan", String(19), nullable=False),
    Column("psn", String(2), nullable=False),
    Column("atc", Integer, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("cleared_fen", BigInteger, nullable=False),
    Column("excess_fen", BigInteger, nullable=False),  # > 0: spent beyond the purse (fraud)
    Column("txn_date", String(6), nullable=False),
    Column("tc", String(16), nullable=False),
    Column("transfer_id", String(80)),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("pan", "psn", "atc", name="uq_ecash_records_card_atc"),
    Index("ix_ecash_records_card", "card_id", "id"),
)
ecash_rejects = Table(
    "ecash_rejects", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("batch_id", BigInteger, nullable=False),
    Column("pan", String(19)),
    Column("psn", String(2)),
    Column("atc", Integer),
    Column("amount_fen", BigInteger),
    Column("reason", String(40), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_ecash_rejects_batch", "batch_id"),
)
oc = cards.onsite_cards


class EcashCryptogramInvalidError(ForbiddenError):
    code = "ecash_cryptogram_invalid"


class EcashLoadInvalidError(InvalidRequestError):
    code = "ecash_load_invalid"


class EcashPurseLimitError(ConflictError):
    """The purse would hold more than its limit (``limit_fen``, ``balance_fen``)."""

    code = "ecash_purse_limit"


class EcashCardBlockedError(ForbiddenError):
    """The card is not active, or is on the hot list (``state``)."""

    code = "ecash_card_blocked"


class EcashLoadConflictError(ConflictError):
    """A load with this ATC exists with another cryptogram or amount."""

    code = "ecash_load_conflict"


# -- loading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadResult:
    """The issuer's answer: ARC and ARPC for the card's second GENERATE AC, and the script
    that sets its purse to ``new_balance_fen``."""

    id: int
    card_id: int
    atc: int
    amount_fen: int
    new_balance_fen: int
    transfer_id: str
    arc: bytes
    arpc: bytes
    script: bytes
    replayed: bool = False


def _answer(ks: KeyStore, card: cards.Card, row: Any, replayed: bool) -> LoadResult:
    arqc = bytes.fromhex(row.arqc)
    sk = ks.card_session_key(card.pan, card.psn, row.atc)
    return LoadResult(row.id, card.id, row.atc, row.amount_fen, row.new_balance_fen,
                      row.transfer_id, emv.ARC_APPROVED,
                      ks.make_arpc(card.pan, card.psn, row.atc, arqc, emv.ARC_APPROVED),
                      emv.ecash_load_script(sk, row.atc, arqc, row.new_balance_fen), replayed)


def _stored_load(ctx: Context, card_id: int, atc: int) -> Any:
    with ctx.engine.connect() as conn:
        return conn.execute(select(ecash_loads).where(
            ecash_loads.c.card_id == card_id, ecash_loads.c.atc == atc)).first()


def purse_limit(ctx: Context, card: cards.Card) -> int:
    return min(ctx.settings.ecash_purse_limit_fen, card.ecash_limit_fen)


def load_ecash(ctx: Context, card_id: int, txn: emv.TxnData, arqc: bytes,
               card_balance_fen: int, *, actor: str,
               subscriber_id: int | None = None) -> LoadResult:
    """Load ``txn.amount_fen`` from the wallet onto the card's purse (圈存).

    ``txn`` is the data the card's ARQC covers (type ``60``); ``card_balance_fen`` the purse
    balance the card reported (9F79). Idempotent per (card, ATC): the same ARQC again gets
    the same answer, money moving once. Raises EcashLoadInvalidError,
    EcashCryptogramInvalidError, AtcReplayedError (a new ARQC with an ATC already seen),
    EcashCardBlockedError, EcashPurseLimitError (card balance + amount, or the purse's
    ledger balance + amount, above the limit), the wallet's overdraft, state and tier-limit
    errors. NfcCardNotFoundError (also for another wallet's card)."""
    from paycell.subscribers.limits import guard_outflow

    card = cards.get_card(ctx, card_id, subscriber_id=subscriber_id)
    if txn.txn_type != "60" or txn.amount_fen <= 0 or txn.other_fen != 0 \
            or txn.currency != "0156" or card_balance_fen < 0 or len(arqc) != 8:
        raise EcashLoadInvalidError("an e-cash load is a type 60 transaction of a positive "
                                    "CNY amount with an 8-byte ARQC")
    stored = _stored_load(ctx, card.id, txn.atc)
    ks = KeyStore(ctx.settings)
    if stored is not None:
        if stored.arqc != arqc.hex().upper() or stored.amount_fen != txn.amount_fen:
            raise EcashLoadConflictError(f"ATC {txn.atc} was used by another load")
        return _answer(ks, card, stored, True)
    if not ks.verify_cryptogram(card.pan, card.psn, txn.atc, txn.to_bytes(), arqc):
        raise EcashCryptogramInvalidError("the ARQC is not the card's")
    limit = purse_limit(ctx, card)
    new_balance = card_balance_fen + txn.amount_fen
    if new_balance > limit:
        raise EcashPurseLimitError(f"the purse may hold at most {limit} fen",
                                   limit_fen=limit, balance_fen=card_balance_fen)
    transfer_id = f"ecash-load:{card.id}:{txn.atc}"
    now = ctx.clock.now_us()

    def before(conn: Connection) -> None:
        seen = cards.check_and_advance_atc(conn, card.id, txn.atc)
        if seen.state != "active" or seen.hot_listed:
            raise EcashCardBlockedError(f"the card is {seen.state}"
                                        + (" and hot-listed" if seen.hot_listed else ""),
                                        state=seen.state)
        held = ctx.ledger.account(card.ecash_account_id, conn).balance
        if held + txn.amount_fen > limit:  # the platform's exposure on this card stays capped
            raise EcashPurseLimitError(f"the purse may hold at most {limit} fen; "
                                       f"{held} fen is loaded and not yet cleared",
                                       limit_fen=limit, balance_fen=held)
        guard_outflow(conn, card.subscriber_id, txn.amount_fen, now, settings=ctx.settings)

    def record(conn: Connection, _r: list[TransferResult]) -> None:
        conn.execute(ecash_loads.insert().values(
            card_id=card.id, atc=txn.atc, amount_fen=txn.amount_fen,
            card_balance_fen=card_balance_fen, new_balance_fen=new_balance,
            arqc=arqc.hex().upper(), transfer_id=transfer_id, created_by=actor[:80],
            created_at=now))

    with contextlib.suppress(AlreadyAppliedError):  # a concurrent twin did it: read it
        post_recorded(ctx.ledger, [TransferRequest(
            transfer_id, card.wallet_account_id, card.ecash_account_id, txn.amount_fen,
            code=TransferCode.ECASH_LOAD, ref=f"e-cash load, card {card.id} ATC {txn.atc}")],
            before=before, record=record)
    stored = _stored_load(ctx, card.id, txn.atc)
    if stored is None:  # pragma: no cover - the transfer exists, so its row does
        raise EcashLoadConflictError(f"ATC {txn.atc}: the load is not recorded")
    log.info("e-cash load %s: %s fen onto card %s (ATC %s)", stored.id, txn.amount_fen,
             card.id, txn.atc)
    return _answer(ks, card, stored, False)


# -- clearing --------------------------------------------------------------------------------


class Gate(Protocol):
    """What clearing needs of a terminal: B's ``terminals.Terminal`` is one."""

    @property
    def terminal_id(self) -> str: ...

    @property
    def merchant_id(self) -> int: ...


@dataclass(frozen=True)
class OfflineRecord:
    """One fare a gate approved offline: the card's TC and the data it covers."""

    pan: str
    psn: str
    atc: int
    amount_fen: int
    date: str
    unpredictable: str
    tc: bytes
    cvr: str
    aip: str = "7C00"
    tvr: str = "0000000000"
    country: str = "0156"
    currency: str = "0156"
    txn_type: str = "00"
    other_fen: int = 0

    def txn(self) -> emv.TxnData:
        return emv.TxnData(amount_fen=self.amount_fen, other_fen=self.other_fen,
                           country=self.country, tvr=self.tvr, currency=self.currency,
                           date=self.date, txn_type=self.txn_type,
                           unpredictable=self.unpredictable, aip=self.aip, atc=self.atc,
                           cvr=self.cvr)


@dataclass(frozen=True)
class RecordOutcome:
    pan: str
    atc: int
    status: str  # cleared | partial (over-spend) | duplicate | rejected
    reason: str | None
    cleared_fen: int
    excess_fen: int


@dataclass(frozen=True)
class BatchResult:
    id: int
    terminal_id: str
    records: int
    cleared: int
    duplicates: int
    rejected: int
    cleared_fen: int
    excess_fen: int
    outcomes: list[RecordOutcome]


class _Duplicate(Exception):
    pass


class _Stale(Exception):
    pass


def _reject_reason(ctx: Context, rec: OfflineRecord, ks: KeyStore) -> tuple[str | None,
                                                                             cards.Card | None]:
    if rec.txn_type != "00" or rec.amount_fen <= 0 or rec.other_fen != 0 \
            or rec.currency != "0156" or len(rec.tc) != 8 \
            or rec.amount_fen > ctx.settings.onsite_max_txn_fen:
        return "malformed", None
    card = cards.find_by_pan(ctx, rec.pan, rec.psn)
    if card is None:
        return "card_unknown", None
    try:
        ok = ks.verify_cryptogram(rec.pan, rec.psn, rec.atc, rec.txn().to_bytes(), rec.tc)
    except ValueError:
        return "malformed", None
    return (None, card) if ok else ("tc_invalid", None)


def _is_cleared(conn: Connection, rec: OfflineRecord) -> bool:
    r = ecash_records.c
    return conn.execute(select(r.id).where(r.pan == rec.pan, r.psn == rec.psn,
                                           r.atc == rec.atc)).first() is not None


def _clear_one(ctx: Context, gate: Gate, payable_id: int, batch_id: int, card: cards.Card,
               rec: OfflineRecord) -> RecordOutcome:
    """Clear one verified record in one transaction; the purse is read again under the
    card's row lock, and the whole is retried if it moved since it was read."""
    transfer_id = f"ecash-clear:{rec.pan}:{rec.psn}:{rec.atc}"
    for _ in range(5):
        held = ctx.ledger.account(card.ecash_account_id).balance
        cleared = min(rec.amount_fen, max(held, 0))
        excess = rec.amount_fen - cleared
        now = ctx.clock.now_us()

        def before(conn: Connection, held: int = held) -> None:
            conn.execute(locking(conn, select(oc.c.id).where(oc.c.id == card.id))).first()
            if _is_cleared(conn, rec):
                raise _Duplicate
            if ctx.ledger.account(card.ecash_account_id, conn).balance != held:
                raise _Stale

        def record(conn: Connection, _r: list[TransferResult] | None = None,
                   cleared: int = cleared, excess: int = excess, now: int = now) -> None:
            conn.execute(ecash_records.insert().values(
                batch_id=batch_id, terminal_id=gate.terminal_id, merchant_id=gate.merchant_id,
                card_id=card.id, pan=rec.pan, psn=rec.psn, atc=rec.atc,
                amount_fen=rec.amount_fen, cleared_fen=cleared, excess_fen=excess,
                txn_date=rec.date, tc=rec.tc.hex().upper(),
                transfer_id=transfer_id if cleared else None, created_at=now))
            if excess:
                cards.hot_list(conn, card.id, "ecash_overspend", now)

        try:
            if cleared:
                post_recorded(ctx.ledger, [TransferRequest(
                    transfer_id, card.ecash_account_id, payable_id, cleared,
                    code=TransferCode.ECASH_CLEAR,
                    ref=f"e-cash fare, terminal {gate.terminal_id}, ATC {rec.atc}")],
                    before=before, record=record)
            else:
                with ctx.engine.begin() as conn:
                    before(conn)
                    record(conn)
        except (_Duplicate, AlreadyAppliedError):
            return RecordOutcome(rec.pan, rec.atc, "duplicate", None, 0, 0)
        except _Stale:
            continue
        if excess:
            log.warning("e-cash over-spend on card %s: %s fen beyond its purse (ATC %s); "
                        "hot-listed", card.id, excess, rec.atc)
        return RecordOutcome(rec.pan, rec.atc, "partial" if excess else "cleared",
                             "overspend" if excess else None, cleared, excess)
    raise ConflictError("the purse kept changing; upload the batch again")


def clear_batch(ctx: Context, gate: Gate, records: Sequence[OfflineRecord], *,
                batch_ref: str | None = None) -> BatchResult:
    """Clear a gate's offline records into its merchant's payable. Each record is verified
    (a bad TC, an unknown card or a malformed record is rejected and kept aside) and cleared
    in its own transaction; one already cleared, in this batch or any other, is a
    duplicate. Safe to upload again: only what was not cleared yet clears."""
    from paycell.merchants.service import get_merchant

    payable_id = get_merchant(ctx, gate.merchant_id).payable_account_id
    if payable_id is None:
        raise ConflictError("the gate's merchant has no payable account (not active)")
    ks = KeyStore(ctx.settings)
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        batch_id = int(conn.execute(ecash_batches.insert().values(
            terminal_id=gate.terminal_id, merchant_id=gate.merchant_id,
            batch_ref=batch_ref, records=len(records), cleared=0, duplicates=0, rejected=0,
            cleared_fen=0, excess_fen=0, created_at=now).returning(ecash_batches.c.id)
        ).scalar_one())
    outcomes: list[RecordOutcome] = []
    for rec in records:
        reason, card = _reject_reason(ctx, rec, ks)
        if card is None:
            with ctx.engine.begin() as conn:
                conn.execute(ecash_rejects.insert().values(
                    batch_id=batch_id, pan=rec.pan[:19], psn=rec.psn[:2], atc=rec.atc,
                    amount_fen=rec.amount_fen, reason=reason or "rejected", created_at=now))
            outcomes.append(RecordOutcome(rec.pan, rec.atc, "rejected", reason, 0, 0))
            continue
        outcomes.append(_clear_one(ctx, gate, payable_id, batch_id, card, rec))
    result = BatchResult(
        batch_id, gate.terminal_id, len(records),
        sum(o.status in ("cleared", "partial") for o in outcomes),
        sum(o.status == "duplicate" for o in outcomes),
        sum(o.status == "rejected" for o in outcomes),
        sum(o.cleared_fen for o in outcomes), sum(o.excess_fen for o in outcomes), outcomes)
    with ctx.engine.begin() as conn:
        conn.execute(update(ecash_batches).where(ecash_batches.c.id == batch_id).values(
            cleared=result.cleared, duplicates=result.duplicates, rejected=result.rejected,
            cleared_fen=result.cleared_fen, excess_fen=result.excess_fen))
    log.info("e-cash batch %s from %s: %s cleared (%s fen), %s duplicates, %s rejected",
             batch_id, gate.terminal_id, result.cleared, result.cleared_fen,
             result.duplicates, result.rejected)
    return result


# -- hot list --------------------------------------------------------------------------------


@dataclass(frozen=True)
class HotListEntry:
    pan: str
    psn: str
    reason: str
    since: int


def hot_list(ctx: Context) -> list[HotListEntry]:
    """Cards a terminal must refuse offline: hot-listed (lost, e-cash over-spend) and
    terminated or locked ones, by PAN."""
    stmt = (select(oc.c.pan, oc.c.psn, oc.c.state, oc.c.block_reason, oc.c.blocked_at,
                   oc.c.updated_at)
            .where(oc.c.pan.is_not(None),
                   or_(oc.c.hot_listed.is_(True), oc.c.state.in_(("lost", "terminated",
                                                                   "locked"))))
            .order_by(oc.c.pan))
    with ctx.engine.connect() as conn:
        return [HotListEntry(r.pan, r.psn, r.block_reason or r.state,
                             r.blocked_at or r.updated_at) for r in conn.execute(stmt)]


def purse_summary(ctx: Context, card_id: int) -> dict[str, int]:
    """What the platform holds for the card's purse: loaded, cleared, excess (fraud)."""
    card = cards.get_card(ctx, card_id)
    with ctx.engine.connect() as conn:
        loaded = conn.execute(select(func.coalesce(func.sum(ecash_loads.c.amount_fen), 0))
                              .where(ecash_loads.c.card_id == card_id)).scalar_one()
        cleared, excess = conn.execute(select(
            func.coalesce(func.sum(ecash_records.c.cleared_fen), 0),
            func.coalesce(func.sum(ecash_records.c.excess_fen), 0))
            .where(ecash_records.c.card_id == card_id)).one()
    return {"loaded_fen": int(loaded), "cleared_fen": int(cleared),
            "excess_fen": int(excess),
            "purse_fen": ctx.ledger.account(card.ecash_account_id).balance}
