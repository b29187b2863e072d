"""Paying an order: the subscriber confirms (PIN in the app, or a texted code) and the
money moves in one ledger transfer ``pay:<trade_no>``, in the same transaction as the
order's new state and the merchant's notification.

- direct: wallet -> merchant payable (``PURCHASE``); the order is ``paid``.
- escrow: a hold wallet -> merchant payable (``ESCROW_HOLD``, no timeout); the order is
  ``held`` until the buyer confirms receipt, the auto-release date, or a dispute decision.

Paying from a bound card or the phone bill first tops the wallet up by exactly the amount
(a top-up keyed by the order, so a retry never charges twice), then pays from the wallet.
If the bank or carrier has not answered yet, the order keeps waiting with ``funding_ref``
set and the payments job pays it when the top-up is confirmed.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, select, update

from paycell.context import Context
from paycell.errors import PaycellError
from paycell.funding import topups
from paycell.funding.cash_common import AlreadyAppliedError, post_recorded
from paycell.ledger import TransferFlags, TransferRequest, TransferResult, chart
from paycell.ledger import errors as le
from paycell.merchants.service import get_merchant
from paycell.payments import confirmations, rules
from paycell.payments.errors import (
    FundingFailedError,
    InsufficientBalanceError,
    MerchantNotPayableError,
    OrderExpiredError,
    OrderNotFoundError,
    PaymentInvalidError,
)
from paycell.payments.orders import Order, find, get_order, to_order, transition
from paycell.payments.tables import payment_orders
from paycell.subscribers.limits import guard_outflow
from paycell.subscribers.service import Subscriber, get_subscriber, verify_pin

log = logging.getLogger(__name__)
SOURCES = ("wallet", "card", "phone_bill")


class _AlreadyPaid(Exception):
    """Internal: the order was paid by an earlier call with the same transfer."""


def pay_order(ctx: Context, order: Order, subscriber: Subscriber, via: str,
              actor: str) -> Order:
    """Move the money for ``order`` from ``subscriber``'s wallet; return the order.

    Idempotent: an order this subscriber already paid answers its current state. Refused
    (nothing written): ``order_expired``, ``order_state_invalid`` (closed, or paid by
    nobody's retry), the subscriber's tier limits and state, ``insufficient_balance``
    (``available_fen``), ``merchant_not_payable``.
    """
    merchant = get_merchant(ctx, order.merchant_id)
    if merchant.state != "active" or merchant.payable_account_id is None:
        raise MerchantNotPayableError("this merchant cannot take payments now",
                                      state=merchant.state)
    escrow = order.kind == "escrow"
    req = TransferRequest(
        id=order.transfer_id, debit_account_id=subscriber.wallet_account_id,
        credit_account_id=merchant.payable_account_id, amount=order.amount_fen,
        ledger=order.currency,
        code=int(chart.TransferCode.ESCROW_HOLD if escrow else chart.TransferCode.PURCHASE),
        flags=TransferFlags.PENDING if escrow else 0, ref=f"order {order.trade_no}")
    now = ctx.clock.now_us()

    locked: list[Any] = []  # the order's row, as before() locked it
    paid: list[Order] = []

    def before(conn: Connection) -> None:
        row = find(conn, order_id=order.id, lock=True)
        locked[:] = [row]
        if row.state in rules.PAID_STATES and row.paid_via is not None:
            raise _AlreadyPaid
        if row.state == rules.WAITING and now >= row.expires_at:
            raise OrderExpiredError("this order expired before it was paid",
                                    expired_at=row.expires_at)
        rules.next_state(row.state, rules.pay_action(row.kind))
        guard_outflow(conn, subscriber.id, order.amount_fen, now, settings=ctx.settings)

    def record(conn: Connection, _results: list[TransferResult]) -> None:
        row = locked[0]  # still locked by before(), in this same transaction: unchanged
        release_at = None
        if escrow:
            release_at = now + ctx.settings.escrow_auto_release_days * 86_400_000_000
        paid[:] = [transition(ctx, conn, row, rules.pay_action(row.kind), actor, now,
                              paid_at=now, paid_via=via, release_at=release_at)]
        confirmations.retire_for_order(conn, order.id)

    try:
        post_recorded(ctx.ledger, [req], before=before, record=record)
        return paid[0]  # what this call committed
    except (_AlreadyPaid, AlreadyAppliedError):
        pass
    except le.AccountOverdraftError as exc:
        raise InsufficientBalanceError(
            "your balance does not cover this payment; top up or pay with a card",
            available_fen=exc.detail.get("available_fen")) from None
    return get_order(ctx, order.trade_no)


def payer_order(ctx: Context, subscriber: Subscriber, trade_no: str) -> Order:
    """An order addressed to this subscriber; anyone else's is "not found"."""
    try:
        order = get_order(ctx, trade_no)
    except OrderNotFoundError:
        order = None
    if order is None or order.payer_subscriber_id != subscriber.id:
        raise OrderNotFoundError(f"you have no payment request {trade_no}")
    return order


def confirm_order(ctx: Context, subscriber: Subscriber, trade_no: str, pin: str, *,
                  source: str = "wallet", card_id: str | None = None) -> Order:
    """The subscriber confirms a payment request in the app with the payment PIN.

    ``source``: ``wallet`` (the balance), ``card`` (a bound card, the default one unless
    ``card_id``) or ``phone_bill``. Answers the order: ``paid``/``held``, or still
    ``waiting`` with ``funding_ref`` while the bank or carrier has not answered. Idempotent:
    confirming a paid order again answers it. Refused: PIN errors (counted), the errors of
    :func:`pay_order`, ``funding_failed`` (``reason``: the bank's or carrier's refusal),
    and the top-up's own refusals (card not usable, phone-bill cap).
    """
    if source not in SOURCES:
        raise PaymentInvalidError(f"source is one of {', '.join(SOURCES)}", field="source")
    order = payer_order(ctx, subscriber, trade_no)
    if order.state in rules.PAID_STATES and order.paid_via is not None:
        return order
    if order.state == rules.WAITING and ctx.clock.now_us() >= order.expires_at:
        raise OrderExpiredError("this order expired before it was paid")
    rules.next_state(order.state, rules.pay_action(order.kind))
    verify_pin(ctx, subscriber.id, pin)
    actor = f"subscriber:{subscriber.id}"
    if source == "wallet":
        return pay_order(ctx, order, subscriber, "wallet", actor)
    key = f"order:{order.trade_no}"
    if source == "card":
        topup = topups.topup_from_card(ctx, subscriber, order.amount_fen, card_id=card_id,
                                       currency=order.currency, key=key)
    else:
        topup = topups.topup_by_phone_bill(ctx, subscriber, order.amount_fen,
                                           currency=order.currency, key=key)
    return _after_topup(ctx, order, subscriber, topup, source, actor)


def _after_topup(ctx: Context, order: Order, subscriber: Subscriber, topup: topups.Topup,
                 source: str, actor: str) -> Order:
    if topup.state == "confirmed":
        return pay_order(ctx, order, subscriber, source, actor)
    if topup.state == "failed":
        _set_funding(ctx, order.id, None)
        raise FundingFailedError(f"the {'bank' if source == 'card' else 'carrier'} refused "
                                 f"the charge: {topup.reason}", reason=topup.reason)
    _set_funding(ctx, order.id, topup.id)
    return get_order(ctx, order.trade_no)


def _set_funding(ctx: Context, order_id: int, ref: str | None) -> None:
    with ctx.engine.begin() as conn:
        conn.execute(update(payment_orders).where(payment_orders.c.id == order_id,
                                                  payment_orders.c.state == rules.WAITING)
                     .values(funding_ref=ref))


def settle_funded_orders(ctx: Context, limit: int = 200) -> int:
    """Worker job: pay waiting orders whose card or phone-bill top-up has been confirmed
    since (or forget the funding if it failed). Returns how many orders were paid."""
    t = payment_orders
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(t).where(t.c.state == rules.WAITING,
                                            t.c.funding_ref.is_not(None))
                            .order_by(t.c.id).limit(limit)).all()
    paid = 0
    for row in rows:
        order = to_order(row)
        assert order.funding_ref is not None
        try:
            topup = topups.get_topup(ctx, order.payer_subscriber_id, order.funding_ref)
            if topup.state == "pending":
                continue
            subscriber = get_subscriber(ctx, order.payer_subscriber_id)
            done = _after_topup(ctx, order, subscriber, topup, topup.source,
                                f"subscriber:{subscriber.id}")
        except PaycellError as exc:  # expired, refused...: the money stays in the wallet
            log.info("order %s not paid after its top-up: %s", order.trade_no, exc.code)
            _set_funding(ctx, order.id, None)
            continue
        paid += done.state != rules.WAITING
    return paid
