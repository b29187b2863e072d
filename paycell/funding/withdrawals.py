"""Withdrawals (提现) to a bound bank card, and the payout of a closing wallet.

A withdrawal: PIN checked; in one ledger call, guarded by ``guard_outflow`` (tier limits,
the wallet active) and written together with the withdrawal row, two linked holds
``withdrawal:<id>`` (wallet → the bank's clearing account) and ``withdrawal:<id>:fee``
(wallet → fee revenue). Then the bank credit is called outside any transaction; its answer
is applied once, under the row lock: approved → both holds posted; rejected → both voided
and the limit usage given back (``release_outflow``); no answer → pending for the
status-query job. The holds never expire on their own: the bank decides.

A close payout (:func:`close_payout`) pays a closing wallet's whole balance to its
default card without fee or limits, as one posted transfer (the wallet must be left empty
for the close); if the bank then refuses, the money goes from clearing to the UNCLAIMED
account (held for collection) instead of back to the closed wallet.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from paycell.context import Context
from paycell.funding.cards import default_card, require_bank, token_of, usable_card
from paycell.funding.cash_common import AlreadyAppliedError, post_recorded
from paycell.funding.common import (
    AlreadyResolvedError,
    clearing_account,
    lock_pending,
    record_id,
    subscriber_page,
)
from paycell.funding.errors import InsufficientBalanceError, WithdrawalNotFoundError
from paycell.funding.fees import FeeRule, withdrawal_fee
from paycell.funding.tables import withdrawals
from paycell.gateways.http import Answer, Outcome
from paycell.ledger import TransferFlags, TransferRequest
from paycell.ledger import errors as le
from paycell.ledger.chart import Code, TransferCode, system_account
from paycell.subscribers.limits import guard_outflow, release_outflow
from paycell.subscribers.service import Subscriber, lock_row, verify_pin

F = TransferFlags


@dataclass(frozen=True)
class Withdrawal:
    id: str
    subscriber_id: int
    kind: str  # withdrawal | close_payout
    card_id: str
    bank: str
    amount_fen: int
    fee_fen: int
    currency: str
    state: str  # pending | confirmed | failed
    reason: str | None
    partner_ref: str | None
    created_at: int
    updated_at: int
    resolved_at: int | None

    @property
    def reference(self) -> str:
        return f"withdrawal:{self.id}"


def _withdrawal(row: Any) -> Withdrawal:
    return Withdrawal(row.id, row.subscriber_id, row.kind, row.card_id, row.bank,
                      row.amount_fen, row.fee_fen, row.currency, row.state, row.reason,
                      row.partner_ref, row.created_at, row.updated_at, row.resolved_at)


def _load(ctx: Context, withdrawal_id: str) -> Withdrawal | None:
    with ctx.engine.connect() as conn:
        row = conn.execute(select(withdrawals).where(withdrawals.c.id == withdrawal_id)).first()
    return None if row is None else _withdrawal(row)


def get_withdrawal(ctx: Context, subscriber_id: int, withdrawal_id: str) -> Withdrawal:
    """One of the subscriber's withdrawals; WithdrawalNotFoundError for anyone else's."""
    found = _load(ctx, withdrawal_id)
    if found is None or found.subscriber_id != subscriber_id:
        raise WithdrawalNotFoundError(f"you have no withdrawal {withdrawal_id}")
    return found


def list_withdrawals(ctx: Context, subscriber_id: int, *, cursor: str | None = None,
                     limit: int = 20) -> tuple[list[Withdrawal], str | None]:
    """The subscriber's withdrawals (close payouts included), newest first."""
    return subscriber_page(ctx, withdrawals, "withdrawals", subscriber_id, cursor, limit,
                           _withdrawal)


def _insert(ctx: Context, conn: Connection, **values: Any) -> None:
    now = ctx.clock.now_us()
    conn.execute(withdrawals.insert().values(
        state="pending", created_at=now, updated_at=now,
        next_check_at=now + ctx.settings.funding_query_after_s * 1_000_000, **values))


# -- start ---------------------------------------------------------------------------------
def request_withdrawal(ctx: Context, subscriber: Subscriber, amount_fen: int, pin: str, *,
                       card_id: str | None = None, currency: str = "CNY",
                       key: str | None = None) -> Withdrawal:
    """Withdraw ``amount_fen`` to a bound card (the default if ``card_id`` is None); the fee
    (``fees.withdrawal_fee``) comes on top, from the wallet.

    Returns it ``confirmed``, ``failed`` (the bank's ``reason``; everything released) or
    ``pending`` (no answer yet). Idempotent per ``key``. Refused with nothing written:
    PinInvalidError / PinLockedError, CardNotFoundError, NoDefaultCardError,
    CardStateError, InsufficientBalanceError, LimitExceededError, SubscriberFrozenError,
    SubscriberClosedError, BankUnavailableError (no bank configured).
    """
    require_bank(ctx)
    wid = record_id("wd_", subscriber.id, key)
    if _load(ctx, wid) is not None:
        return send(ctx, wid, first=False)
    verify_pin(ctx, subscriber.id, pin)
    card, _ = usable_card(ctx, subscriber.id, card_id)
    bank = card.bank or "testbank"
    fee = withdrawal_fee(amount_fen, FeeRule.from_settings(ctx.settings))
    wallet = subscriber.wallet_account_id
    reqs = [TransferRequest(f"withdrawal:{wid}", wallet, clearing_account(ctx, bank).id,
                            amount_fen, code=int(TransferCode.WITHDRAWAL),
                            flags=F.PENDING | (F.LINKED if fee else 0),
                            ref=f"withdrawal {wid} to card *{card.last4}")]
    if fee:
        fees = system_account(ctx.ledger, Code.REVENUE_FEES)
        reqs.append(TransferRequest(f"withdrawal:{wid}:fee", wallet, fees.id, fee,
                                    code=int(TransferCode.WITHDRAWAL_FEE), flags=F.PENDING,
                                    ref=f"withdrawal {wid} fee"))

    def before(conn: Connection) -> None:
        guard_outflow(conn, subscriber.id, amount_fen + fee, ctx.clock.now_us(),
                      settings=ctx.settings)

    def record(conn: Connection, _results: Any) -> None:
        _insert(ctx, conn, id=wid, subscriber_id=subscriber.id, kind="withdrawal",
                card_id=card.id, bank=bank, amount_fen=amount_fen, fee_fen=fee,
                currency=currency)

    try:
        post_recorded(ctx.ledger, reqs, before=before, record=record)
    except le.AccountOverdraftError:
        available = ctx.ledger.account(wallet).available
        raise InsufficientBalanceError(
            "the wallet's available balance does not cover the amount and the fee",
            available_fen=available, needed_fen=amount_fen + fee, fee_fen=fee) from None
    except AlreadyAppliedError:
        pass
    return send(ctx, wid, first=True)


def close_payout(ctx: Context, subscriber: Subscriber, amount_fen: int) -> str | None:
    """Pay a closing wallet's balance to its default card, without fee: for
    ``subscribers.lifecycle.close_account``. Returns the withdrawal's id once the wallet is
    empty, or None when there is no default card or no bank (the balance is then held for
    collection). Idempotent per subscriber (one close payout each)."""
    if ctx.bank is None or amount_fen <= 0:
        return None
    card = default_card(ctx, subscriber.id)
    if card is None:
        return None
    wid = record_id("wd_", subscriber.id, "close", scope="close")
    if _load(ctx, wid) is not None:
        send(ctx, wid, first=False)
        return wid
    bank = card.bank or "testbank"
    req = TransferRequest(f"withdrawal:{wid}", subscriber.wallet_account_id,
                          clearing_account(ctx, bank).id, amount_fen,
                          code=int(TransferCode.CLOSE_PAYOUT),
                          ref=f"wallet closed: paid to card *{card.last4}")

    def record(conn: Connection, _results: Any) -> None:
        _insert(ctx, conn, id=wid, subscriber_id=subscriber.id, kind="close_payout",
                card_id=card.id, bank=bank, amount_fen=amount_fen, fee_fen=0,
                currency="CNY")

    with contextlib.suppress(AlreadyAppliedError):
        post_recorded(ctx.ledger, [req], before=lambda c: lock_row(c, subscriber.id),
                      record=record)
    send(ctx, wid, first=True)
    return wid


# -- call outside and apply --------------------------------------------------------------------
def send(ctx: Context, withdrawal_id: str, *, first: bool) -> Withdrawal:
    """(Re)send the bank credit of a pending withdrawal, outside any transaction, and
    apply the answer (the bank treats a repeated reference as the same operation)."""
    w = _load(ctx, withdrawal_id)
    assert w is not None
    if w.state != "pending":
        return w
    with ctx.engine.connect() as conn:
        token = token_of(conn, w.card_id)
    if ctx.bank is None or token is None:  # card unbound meanwhile: ask for status later
        return apply_answer(ctx, w.id, Answer(Outcome.UNKNOWN), first=False)
    answer = ctx.bank.credit(reference=w.reference, token=token, amount_fen=w.amount_fen,
                             currency=w.currency)
    return apply_answer(ctx, w.id, answer, first=first)


def check(ctx: Context, withdrawal_id: str) -> Withdrawal:
    """Ask the bank what became of a pending withdrawal and apply the answer (the job)."""
    w = _load(ctx, withdrawal_id)
    assert w is not None
    if w.state != "pending" or ctx.bank is None:
        return w
    return apply_answer(ctx, w.id, ctx.bank.status(reference=w.reference), first=False)


def apply_answer(ctx: Context, withdrawal_id: str, answer: Answer, *, first: bool
                 ) -> Withdrawal:
    """Apply the bank's answer to a pending withdrawal, once (under its row lock); see
    ``topups.apply_answer`` for ``first``."""
    w = _load(ctx, withdrawal_id)
    assert w is not None
    grace = ctx.settings.funding_not_found_grace_s * 1_000_000
    try:
        match answer.outcome:
            case Outcome.APPROVED:
                _settle(ctx, w, "confirmed", None, answer.partner_ref)
            case Outcome.REJECTED:
                _settle(ctx, w, "failed", answer.reason or "rejected", answer.partner_ref)
            case Outcome.UNAVAILABLE if first:
                _settle(ctx, w, "failed", "bank_unavailable", None)
            case Outcome.NOT_FOUND if ctx.clock.now_us() - w.created_at >= grace:
                _settle(ctx, w, "failed", "not_received", None)
            case _:
                _later(ctx, w)
    except AlreadyResolvedError:
        pass
    result = _load(ctx, withdrawal_id)
    assert result is not None
    return result


def _settle(ctx: Context, w: Withdrawal, state: str, reason: str | None,
            partner_ref: str | None) -> None:
    """Post (confirmed) or void (failed) the holds, or for a close payout move a refused
    payout to UNCLAIMED; and record the outcome, in one transaction."""
    reqs = _settling_requests(ctx, w, confirmed=state == "confirmed")

    def before(conn: Connection) -> None:
        lock_pending(conn, withdrawals, w.id)
        if state == "failed" and w.kind == "withdrawal":
            release_outflow(conn, w.subscriber_id, w.amount_fen + w.fee_fen, w.created_at)

    def record(conn: Connection, _results: Any = None) -> None:
        now = ctx.clock.now_us()
        conn.execute(update(withdrawals).where(withdrawals.c.id == w.id).values(
            state=state, reason=reason and reason[:60], partner_ref=partner_ref,
            resolved_at=now, updated_at=now, next_check_at=None))

    if not reqs:
        with ctx.engine.begin() as conn:
            before(conn)
            record(conn)
        return
    with contextlib.suppress(AlreadyAppliedError):
        post_recorded(ctx.ledger, reqs, before=before, record=record)


def _settling_requests(ctx: Context, w: Withdrawal, *, confirmed: bool
                       ) -> list[TransferRequest]:
    if w.kind == "close_payout":
        if confirmed:
            return []
        unclaimed = system_account(ctx.ledger, Code.UNCLAIMED)
        return [TransferRequest(f"{w.reference}:unclaimed", clearing_account(ctx, w.bank).id,
                                unclaimed.id, w.amount_fen, code=int(TransferCode.CLOSE_PAYOUT),
                                ref="close payout refused by the bank: held for collection")]
    flag, suffix = (F.POST_PENDING, "post") if confirmed else (F.VOID_PENDING, "void")
    holds = [(w.reference, TransferCode.WITHDRAWAL)]
    if w.fee_fen:
        holds.append((f"{w.reference}:fee", TransferCode.WITHDRAWAL_FEE))
    return [TransferRequest(f"{h}:{suffix}", flags=flag | (F.LINKED if i < len(holds) - 1
                                                           else 0),
                            pending_id=h, ledger=None, code=int(code),
                            ref=f"withdrawal {w.id} {suffix}")
            for i, (h, code) in enumerate(holds)]


def _later(ctx: Context, w: Withdrawal) -> None:
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        conn.execute(update(withdrawals).where(withdrawals.c.id == w.id,
                                               withdrawals.c.state == "pending")
                     .values(updated_at=now, next_check_at=now + ctx.settings
                             .funding_query_after_s * 1_000_000))
