"""Refunds (退款), partial or full, each with the merchant's own ``out_request_no``.

A refund of a paid (or released) order is one transfer ``refund:<refund_no>`` merchant
payable -> the payer's wallet (``REFUND``). While escrow still holds the money the only
refund is the whole amount, and it is the hold's void (``pay:<trade_no>:void``). Never more
than was paid in total: the check runs under the order's row lock, in the transaction that
moves the money.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from paycell.context import Context
from paycell.funding.cash_common import AlreadyAppliedError, post_recorded
from paycell.ledger import TransferFlags, TransferRequest, TransferResult, chart
from paycell.ledger import errors as le
from paycell.merchants.model import Merchant
from paycell.merchants.service import get_merchant
from paycell.payments import rules
from paycell.payments.errors import (
    MerchantBalanceInsufficientError,
    OutRequestNoConflictError,
    PaymentInvalidError,
)
from paycell.payments.orders import Order, find, get_order, merchant_order, transition
from paycell.payments.tables import payment_refunds
from paycell.subscribers.service import get_subscriber

OUT_REQUEST_NO = re.compile(r"^[A-Za-z0-9_\-.:]{1,64}$")


@dataclass(frozen=True)
class Refund:
    refund_no: str
    order_id: int
    out_request_no: str
    amount_fen: int
    reason: str | None
    source: str  # merchant | dispute
    created_at: int


def _refund(r: Any) -> Refund:
    return Refund(r.refund_no, r.order_id, r.out_request_no, r.amount_fen, r.reason, r.source,
                  r.created_at)


def refund_no_for(trade_no: str, out_request_no: str) -> str:
    """Derived, so that a retried request after a crash finds its own ledger transfer."""
    return "R" + hashlib.sha256(f"{trade_no}|{out_request_no}".encode()).hexdigest()[:24]


def _find(conn: Connection, order_id: int, out_request_no: str) -> Any:
    t = payment_refunds
    return conn.execute(select(t).where(t.c.order_id == order_id,
                                        t.c.out_request_no == out_request_no)).first()


def _same_or_conflict(row: Any, amount_fen: int) -> Refund:
    if row.amount_fen != amount_fen:
        raise OutRequestNoConflictError(
            f"out_request_no {row.out_request_no!r} was a refund of {row.amount_fen} fen; "
            "use a new out_request_no for another refund", field="amount_fen")
    return _refund(row)


class _Exists(Exception):
    pass


def refund_order(ctx: Context, merchant: Merchant, *, out_request_no: str, amount_fen: int,
                 reason: str | None = None, trade_no: str | None = None,
                 out_trade_no: str | None = None) -> tuple[Refund, Order]:
    """Refund ``amount_fen`` of the merchant's order to the payer's wallet.

    Idempotent per (order, ``out_request_no``): the same amount again answers the first
    refund; another amount is ``out_request_no_conflict``. Refused with nothing moved:
    ``refund_exceeds_paid`` (``refundable_fen``), ``escrow_partial_refund``,
    ``order_state_invalid`` (unpaid, closed, disputed), ``merchant_balance_insufficient``.
    """
    if not OUT_REQUEST_NO.match(out_request_no or ""):
        raise PaymentInvalidError("out_request_no is 1 to 64 letters, digits or _-.:",
                                  field="out_request_no")
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
        raise PaymentInvalidError("amount_fen is a positive whole number of fen",
                                  field="amount_fen")
    order = merchant_order(ctx, merchant.id, trade_no=trade_no, out_trade_no=out_trade_no)
    with ctx.engine.connect() as conn:
        old = _find(conn, order.id, out_request_no)
    if old is not None:
        return _same_or_conflict(old, amount_fen), order
    refund_no = refund_no_for(order.trade_no, out_request_no)
    reason = reason.strip()[:200] if reason else None
    if order.state == rules.HELD:
        req = TransferRequest(id=f"{order.transfer_id}:void", pending_id=order.transfer_id,
                              ledger=None, flags=TransferFlags.VOID_PENDING,
                              code=int(chart.TransferCode.ESCROW_REFUND),
                              ref=f"refund {refund_no}")
    else:
        payer = get_subscriber(ctx, order.payer_subscriber_id)
        req = TransferRequest(
            id=f"refund:{refund_no}", debit_account_id=get_merchant(
                ctx, order.merchant_id).payable_account_id or 0,
            credit_account_id=payer.wallet_account_id, amount=amount_fen,
            ledger=order.currency, code=int(chart.TransferCode.REFUND),
            ref=f"refund {refund_no} of {order.trade_no}")
    now = ctx.clock.now_us()
    state_seen = order.state

    def before(conn: Connection) -> None:
        row = find(conn, order_id=order.id, lock=True)
        if _find(conn, order.id, out_request_no) is not None:
            raise _Exists
        if (row.state == rules.HELD) != (state_seen == rules.HELD):
            raise _Exists  # released or refunded meanwhile: start again from the new state
        rules.refund_action(row.state, row.amount_fen, row.refunded_fen, amount_fen)

    def record(conn: Connection, _results: list[TransferResult]) -> None:
        row = find(conn, order_id=order.id, lock=True)
        action = rules.refund_action(row.state, row.amount_fen, row.refunded_fen, amount_fen)
        conn.execute(payment_refunds.insert().values(
            refund_no=refund_no, order_id=order.id, out_request_no=out_request_no,
            amount_fen=amount_fen, reason=reason, source="merchant", created_at=now))
        transition(ctx, conn, row, action, f"merchant:{merchant.id}", now,
                   note=f"refund {refund_no}: {amount_fen} fen",
                   refunded_fen=row.refunded_fen + amount_fen)

    try:
        post_recorded(ctx.ledger, [req], before=before, record=record)
    except (_Exists, AlreadyAppliedError):
        with ctx.engine.connect() as conn:
            old = _find(conn, order.id, out_request_no)
        if old is None:  # the order changed under us (escrow released): try once more
            return refund_order(ctx, merchant, out_request_no=out_request_no,
                                amount_fen=amount_fen, reason=reason, trade_no=order.trade_no)
        return _same_or_conflict(old, amount_fen), get_order(ctx, order.trade_no)
    except le.AccountOverdraftError:
        raise MerchantBalanceInsufficientError(
            "your payable balance cannot cover this refund (it was settled out already)"
        ) from None
    with ctx.engine.connect() as conn:
        done = _refund(_find(conn, order.id, out_request_no))
    return done, get_order(ctx, order.trade_no)


def refunds_of(ctx: Context, order_id: int) -> list[Refund]:
    with ctx.engine.connect() as conn:
        return [_refund(r) for r in conn.execute(select(payment_refunds).where(
            payment_refunds.c.order_id == order_id).order_by(payment_refunds.c.id))]
