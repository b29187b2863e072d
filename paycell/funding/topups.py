"""Top-ups (充值): from a bound bank card, or charged to the phone bill (carrier billing).

Each is "persist pending, call outside, apply the answer":
1. the top-up is written ``pending`` (after checking the tier's balance cap, and for the
   phone bill the monthly cap, which it reserves under the subscriber's row lock);
2. the bank debit / carrier charge is called outside any transaction, with the reference
   ``topup:<id>``;
3. the answer is applied under the top-up's row lock, so exactly once: approved → one
   ledger transfer ``topup:<id>`` from the bank's clearing account (or the carrier's
   receivable) to the wallet, guarded by ``guard_inflow``; rejected → ``failed`` with the
   partner's reason and nothing credited; no answer → stays ``pending`` for the
   status-query job (``jobs.py``).
If the partner took the money but the wallet can no longer receive it (balance cap reached
meanwhile, wallet closed), the transfer ``topup:<id>`` goes to the suspense account
instead and the top-up fails with ``held_in_suspense``: operators refund it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from paycell.context import Context
from paycell.errors import PaycellError
from paycell.funding.cards import require_bank, token_of, usable_card
from paycell.funding.cash_common import AlreadyAppliedError, insert_ignore, post_recorded
from paycell.funding.common import (
    AlreadyResolvedError,
    clearing_account,
    lock_pending,
    record_id,
    subscriber_page,
)
from paycell.funding.errors import (
    CarrierUnavailableError,
    PhoneBillCapExceededError,
    TopupNotFoundError,
)
from paycell.funding.tables import phone_bill_usage, topups
from paycell.gateways.http import Answer, Outcome
from paycell.ledger import TransferRequest
from paycell.ledger import errors as le
from paycell.ledger.chart import Code, TransferCode, system_account
from paycell.subscribers.errors import BalanceCapExceededError, SubscriberClosedError
from paycell.subscribers.limits import guard_inflow
from paycell.subscribers.service import Subscriber, get_subscriber
from paycell.subscribers.tiers import periods

# Why a wallet could not take money the partner had already taken: held in suspense.
UNRECEIVABLE = (BalanceCapExceededError, SubscriberClosedError, le.AccountClosedError)


@dataclass(frozen=True)
class Topup:
    id: str
    subscriber_id: int
    source: str  # card | phone_bill
    card_id: str | None
    msisdn: str | None
    partner: str
    amount_fen: int
    currency: str
    state: str  # pending | confirmed | failed
    reason: str | None
    partner_ref: str | None
    held_in_suspense: bool
    created_at: int
    updated_at: int
    resolved_at: int | None

    @property
    def reference(self) -> str:
        return f"topup:{self.id}"


def _topup(row: Any) -> Topup:
    return Topup(row.id, row.subscriber_id, row.source, row.card_id, row.msisdn, row.partner,
                 row.amount_fen, row.currency, row.state, row.reason, row.partner_ref,
                 bool(row.held_in_suspense), row.created_at, row.updated_at, row.resolved_at)


def _load(ctx: Context, topup_id: str) -> Topup | None:
    with ctx.engine.connect() as conn:
        row = conn.execute(select(topups).where(topups.c.id == topup_id)).first()
    return None if row is None else _topup(row)


def get_topup(ctx: Context, subscriber_id: int, topup_id: str) -> Topup:
    """One of the subscriber's top-ups; TopupNotFoundError for anyone else's."""
    found = _load(ctx, topup_id)
    if found is None or found.subscriber_id != subscriber_id:
        raise TopupNotFoundError(f"you have no top-up {topup_id}")
    return found


def list_topups(ctx: Context, subscriber_id: int, *, cursor: str | None = None,
                limit: int = 20) -> tuple[list[Topup], str | None]:
    """The subscriber's top-ups, newest first, and the cursor of the next page."""
    return subscriber_page(ctx, topups, "topups", subscriber_id, cursor, limit, _topup)


# -- start ---------------------------------------------------------------------------------
def _insert(ctx: Context, conn: Connection, **values: Any) -> None:
    now = ctx.clock.now_us()
    conn.execute(topups.insert().values(
        state="pending", created_at=now, updated_at=now, held_in_suspense=False,
        next_check_at=now + ctx.settings.funding_query_after_s * 1_000_000, **values))


def topup_from_card(ctx: Context, subscriber: Subscriber, amount_fen: int, *,
                    card_id: str | None = None, currency: str = "CNY",
                    key: str | None = None) -> Topup:
    """Top the wallet up from a bound card (the default one if ``card_id`` is None).

    Returns the top-up ``confirmed`` (credited), ``failed`` (``reason`` from the bank,
    nothing credited) or ``pending`` (no answer yet: the status-query job resolves it).
    Idempotent per ``key``. Refused before the bank is asked: CardNotFoundError,
    NoDefaultCardError, CardStateError, BalanceCapExceededError, SubscriberClosedError,
    BankUnavailableError (no bank configured).
    """
    require_bank(ctx)
    tid = record_id("tu_", subscriber.id, key)
    found = _load(ctx, tid)
    if found is not None:
        return send(ctx, tid, first=False) if found.state == "pending" else found
    card, _ = usable_card(ctx, subscriber.id, card_id)
    try:
        with ctx.engine.begin() as conn:
            guard_inflow(conn, subscriber.id, amount_fen, settings=ctx.settings)
            _insert(ctx, conn, id=tid, subscriber_id=subscriber.id, source="card",
                    card_id=card.id, partner=card.bank or "testbank", amount_fen=amount_fen,
                    currency=currency)
    except IntegrityError:
        return send(ctx, tid, first=False)  # a concurrent retry wrote it first
    return send(ctx, tid, first=True)


def topup_by_phone_bill(ctx: Context, subscriber: Subscriber, amount_fen: int, *,
                        currency: str = "CNY", key: str | None = None) -> Topup:
    """Top the wallet up by charging the subscriber's own phone account (prepaid airtime
    or postpaid bill) through the carrier.

    The monthly cap (``phone_bill_monthly_cap_fen``, China Standard Time months) is
    checked and reserved under the subscriber's row lock, so concurrent top-ups cannot pass
    it together; a failed top-up gives its share back. Same outcomes and idempotency as
    :func:`topup_from_card`. Refused: PhoneBillCapExceededError (``cap_fen``,
    ``remaining_fen``), BalanceCapExceededError, CarrierUnavailableError.
    """
    carrier = ctx.carrier
    if carrier is None:
        raise CarrierUnavailableError("no carrier billing is configured (PAYCELL_CARRIER_URL)")
    tid = record_id("tu_", subscriber.id, key)
    found = _load(ctx, tid)
    if found is not None:
        return send(ctx, tid, first=False) if found.state == "pending" else found
    cap = ctx.settings.phone_bill_monthly_cap_fen
    try:
        with ctx.engine.begin() as conn:
            guard_inflow(conn, subscriber.id, amount_fen, settings=ctx.settings)  # row lock
            month = periods(ctx.clock.now_us())[1]
            used = _used(conn, subscriber.id, month)
            if used + amount_fen > cap:
                raise PhoneBillCapExceededError(
                    "over this month's cap for top-ups charged to the phone bill",
                    cap_fen=cap, remaining_fen=max(0, cap - used))
            insert_ignore(conn, phone_bill_usage, subscriber_id=subscriber.id, month=month,
                          used_fen=0)
            _add_usage(conn, subscriber.id, month, amount_fen)
            _insert(ctx, conn, id=tid, subscriber_id=subscriber.id, source="phone_bill",
                    msisdn=subscriber.msisdn, partner=carrier.name, amount_fen=amount_fen,
                    currency=currency)
    except IntegrityError:
        return send(ctx, tid, first=False)
    return send(ctx, tid, first=True)


def _used(conn: Connection, subscriber_id: int, month: str) -> int:
    t = phone_bill_usage
    return int(conn.execute(select(t.c.used_fen).where(
        t.c.subscriber_id == subscriber_id, t.c.month == month)).scalar() or 0)


def _add_usage(conn: Connection, subscriber_id: int, month: str, delta: int) -> None:
    t = phone_bill_usage
    conn.execute(update(t).where(t.c.subscriber_id == subscriber_id, t.c.month == month)
                 .values(used_fen=t.c.used_fen + delta))


def phone_bill_used(ctx: Context, subscriber_id: int) -> int:
    """What the subscriber has charged to the phone bill this month (pending included)."""
    with ctx.engine.connect() as conn:
        return _used(conn, subscriber_id, periods(ctx.clock.now_us())[1])


# -- call outside and apply --------------------------------------------------------------------
def send(ctx: Context, topup_id: str, *, first: bool) -> Topup:
    """(Re)send the debit or charge of a pending top-up, outside any transaction, and apply
    the answer. Partners treat a repeated reference as the same operation."""
    t = _load(ctx, topup_id)
    assert t is not None
    if t.state != "pending":
        return t
    if t.source == "card":
        with ctx.engine.connect() as conn:
            token = token_of(conn, t.card_id or "")
        if ctx.bank is None or token is None:  # card unbound meanwhile: ask for status later
            return apply_answer(ctx, t.id, Answer(Outcome.UNKNOWN), first=False)
        answer = ctx.bank.debit(reference=t.reference, token=token, amount_fen=t.amount_fen,
                                currency=t.currency)
    else:
        if ctx.carrier is None:
            return apply_answer(ctx, t.id, Answer(Outcome.UNKNOWN), first=False)
        answer = ctx.carrier.charge(reference=t.reference, msisdn=t.msisdn or "",
                                    amount_fen=t.amount_fen, currency=t.currency)
    return apply_answer(ctx, t.id, answer, first=first)


def check(ctx: Context, topup_id: str) -> Topup:
    """Ask the partner what became of a pending top-up and apply the answer (the job)."""
    t = _load(ctx, topup_id)
    assert t is not None
    if t.state != "pending":
        return t
    gateway = ctx.bank if t.source == "card" else ctx.carrier
    if gateway is None:
        return t
    return apply_answer(ctx, t.id, gateway.status(reference=t.reference), first=False)


def apply_answer(ctx: Context, topup_id: str, answer: Answer, *, first: bool) -> Topup:
    """Apply a partner's answer to a pending top-up, once (under its row lock).

    ``first``: the answer is to the very first request, so "unavailable" (the request never
    reached the partner) may fail the top-up; otherwise an earlier attempt may have arrived
    and only a status query can tell.
    """
    t = _load(ctx, topup_id)
    assert t is not None
    now = ctx.clock.now_us()
    grace_over = now - t.created_at >= ctx.settings.funding_not_found_grace_s * 1_000_000
    try:
        match answer.outcome:
            case Outcome.APPROVED:
                _credit(ctx, t, answer.partner_ref)
            case Outcome.REJECTED:
                _fail(ctx, t, answer.reason or "rejected", answer.partner_ref)
            case Outcome.UNAVAILABLE if first:
                _fail(ctx, t, f"{'bank' if t.source == 'card' else 'carrier'}_unavailable",
                      None)
            case Outcome.NOT_FOUND if grace_over:
                _fail(ctx, t, "not_received", None)
            case _:
                _later(ctx, t)
    except AlreadyResolvedError:
        pass
    result = _load(ctx, topup_id)
    assert result is not None
    return result


def _source_account(ctx: Context, t: Topup) -> int:
    if t.source == "card":
        return clearing_account(ctx, t.partner).id
    return system_account(ctx.ledger, Code.CARRIER_RECEIVABLE, t.partner).id


def _credit(ctx: Context, t: Topup, partner_ref: str | None) -> None:
    sub = get_subscriber(ctx, t.subscriber_id)
    code = TransferCode.TOPUP_BANK if t.source == "card" else TransferCode.TOPUP_CARRIER
    req = TransferRequest(t.reference, _source_account(ctx, t), sub.wallet_account_id,
                          t.amount_fen, code=int(code), ref=f"top-up {t.id} ({t.partner})")

    def before(conn: Connection) -> None:
        lock_pending(conn, topups, t.id)
        guard_inflow(conn, t.subscriber_id, t.amount_fen, settings=ctx.settings)

    def record(conn: Connection, _results: Any) -> None:
        _resolve(ctx, conn, t.id, "confirmed", None, partner_ref)

    try:
        post_recorded(ctx.ledger, [req], before=before, record=record)
    except AlreadyAppliedError:
        pass
    except UNRECEIVABLE as exc:
        _to_suspense(ctx, t, exc, partner_ref)


def _to_suspense(ctx: Context, t: Topup, exc: PaycellError, partner_ref: str | None) -> None:
    suspense = system_account(ctx.ledger, Code.SUSPENSE)
    code = TransferCode.TOPUP_BANK if t.source == "card" else TransferCode.TOPUP_CARRIER
    req = TransferRequest(t.reference, _source_account(ctx, t), suspense.id, t.amount_fen,
                          code=int(code), ref=f"top-up {t.id}: {exc.code}, to refund")

    def record(conn: Connection, _results: Any) -> None:
        _resolve(ctx, conn, t.id, "failed", exc.code, partner_ref, held_in_suspense=True)

    with contextlib.suppress(AlreadyAppliedError):
        post_recorded(ctx.ledger, [req], before=lambda c: lock_pending(c, topups, t.id),
                      record=record)


def _fail(ctx: Context, t: Topup, reason: str, partner_ref: str | None) -> None:
    with ctx.engine.begin() as conn:
        row = lock_pending(conn, topups, t.id)
        _resolve(ctx, conn, t.id, "failed", reason[:60], partner_ref)
        if t.source == "phone_bill":  # give the month's cap back
            _add_usage(conn, t.subscriber_id, periods(row.created_at)[1], -t.amount_fen)


def _resolve(ctx: Context, conn: Connection, topup_id: str, state: str, reason: str | None,
             partner_ref: str | None, **more: Any) -> None:
    now = ctx.clock.now_us()
    conn.execute(update(topups).where(topups.c.id == topup_id).values(
        state=state, reason=reason, partner_ref=partner_ref, resolved_at=now, updated_at=now,
        next_check_at=None, **more))


def _later(ctx: Context, t: Topup) -> None:
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        conn.execute(update(topups).where(topups.c.id == t.id, topups.c.state == "pending")
                     .values(updated_at=now, next_check_at=now + ctx.settings
                             .funding_query_after_s * 1_000_000))
