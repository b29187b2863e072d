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

from sqlalchemy import select, update

from paycell.context import Context
from paycell.errors import PaycellError
from paycell.funding import topups
from paycell.payments import rules
from paycell.payments.errors import (
    FundingFailedError,
    OrderExpiredError,
    OrderNotFoundError,
    PaymentInvalidError,
)
from paycell.payments.orders import Order, get_order, to_order
from paycell.payments.paying_batch import PayCommand, pay_batch
from paycell.payments.tables import payment_orders
from paycell.subscribers.service import Subscriber, get_subscriber, verify_pin

log = logging.getLogger(__name__)
SOURCES = ("wallet", "card", "phone_bill")


def pay_order(ctx: Context, order: Order, subscriber: Subscriber, via: str,
              actor: str) -> Order:
    """Move the money for ``order`` from ``subscriber``'s wallet; return the order.

    Idempotent: an order this subscriber already paid answers its current state. Refused
    (nothing written): ``order_expired``, ``order_state_invalid`` (closed, or paid by
    nobody's retry), the subscriber's tier limits and state, ``insufficient_balance``
    (``available_fen``), ``merchant_not_payable``. A batch of one (``paying_batch.py``).
    """
    cmd = PayCommand(subscriber, order.trade_no, None, via, actor)
    return pay_batch(ctx, [cmd])[0].unwrap()


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
    actor = f"subscriber:{subscriber.id}"
    if source == "wallet":  # every check under the order's lock, the PIN's among them
        return pay_batch(ctx, [PayCommand(subscriber, trade_no, pin)])[0].unwrap()
    order = payer_order(ctx, subscriber, trade_no)
    if order.state in rules.PAID_STATES and order.paid_via is not None:
        return order
    if order.state == rules.WAITING and ctx.clock.now_us() >= order.expires_at:
        raise OrderExpiredError("this order expired before it was paid")
    rules.next_state(order.state, rules.pay_action(order.kind))
    verify_pin(ctx, subscriber.id, pin)
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
