"""Paying orders from wallets, many at once: one transaction, a fixed number of statements.

:func:`pay_batch` pays a batch of :class:`PayCommand` exactly as ``paying.pay_order`` (and,
with a PIN, the wallet path of ``paying.confirm_order``) would one after another, in order:
the orders are locked in id order, the payers by :class:`~paycell.subscribers.batch.Wallets`
and the accounts by :class:`~paycell.ledger.posting.Posting`; each command is checked (the
order is the caller's, payable, not expired; the PIN; the merchant; the wallet's state,
limits and balance) against the rows as the commands before it left them, and every order
change, event, notification, PIN count, usage and transfer is written at once.
``pay_order`` and the app's confirmation are batches of one; the API's ``orders`` desk
hands it the confirmations that arrived while the previous batch ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection

from paycell.batching import After, Ahead, around
from paycell.bulk import insert_many, select_any, update_many
from paycell.context import Context
from paycell.errors import PaycellError
from paycell.ledger import TransferFlags, TransferRequest, chart
from paycell.ledger import errors as le
from paycell.ledger.posting import Posting
from paycell.merchants.model import Merchant
from paycell.merchants.service import to_merchant
from paycell.merchants.tables import merchants
from paycell.notifications.service import Outgoing, enqueue_many
from paycell.payments import confirmations, rules
from paycell.payments.errors import (
    InsufficientBalanceError,
    MerchantNotPayableError,
    OrderExpiredError,
    OrderNotFoundError,
)
from paycell.payments.orders import Order, public_view, to_order
from paycell.payments.tables import payment_events, payment_orders, sms_confirmations
from paycell.subscribers.batch import Wallets
from paycell.subscribers.service import Subscriber


@dataclass(frozen=True, slots=True)
class PayCommand:
    """Pay the order ``trade_no`` from ``subscriber``'s wallet. With ``pin`` the payment PIN
    is checked in the batch (the app's confirmation); None: the caller checked already (a
    texted code, a confirmed top-up)."""

    subscriber: Subscriber
    trade_no: str
    pin: str | None = None
    via: str = "wallet"
    actor: str | None = None  # default: the subscriber


@dataclass(slots=True)
class Paid:
    order: Order | None = None
    merchant: Merchant | None = None  # the order's
    error: PaycellError | None = None
    answered: Any = None  # by the caller's ``ahead`` (a replayed request)

    def unwrap(self) -> Order:
        if self.error is not None:
            raise self.error
        assert self.order is not None
        return self.order




def pay_batch(ctx: Context, cmds: Sequence[PayCommand], *, ahead: Ahead | None = None,
              after: After | None = None) -> list[Paid]:
    """Pay ``cmds`` in one transaction; an answer per command, in order. ``ahead`` and
    ``after`` add the caller's rows to the transaction (the API's Idempotency-Keys)."""

    def work(conn: Connection) -> list[Paid]:
        paid = [Paid() for _ in cmds]
        return around(conn, paid, lambda todo: _pay(ctx, conn, [(i, cmds[i]) for i in todo],
                                                     paid), ahead, after)

    result: list[Paid] = ctx.ledger.transaction(work)
    return result


def _pay(ctx: Context, conn: Connection, todo: list[tuple[int, PayCommand]],
         paid: list[Paid]) -> None:
    now = ctx.clock.now_us()
    t = payment_orders
    rows = {r.trade_no: r for r in select_any(conn, t, "trade_no",
                                              {c.trade_no for _, c in todo}, lock=True)}
    shops = {r.id: to_merchant(r) for r in select_any(
        conn, merchants, "id", {r.merchant_id for r in rows.values()})}
    w = Wallets(conn, ctx.settings, now, ids=[c.subscriber.id for _, c in todo])
    payables = {m.payable_account_id for m in shops.values() if m.payable_account_id}
    posting = Posting(ctx.ledger, conn,
                      payables | {c.subscriber.wallet_account_id for _, c in todo})
    orders: dict[str, Order] = {no: to_order(r) for no, r in rows.items()}
    changed: dict[str, tuple[str, Order]] = {}  # trade_no -> (state before, order after)
    events: list[dict[str, Any]] = []
    for i, c in todo:
        try:
            was = orders.get(c.trade_no)
            order = _one(ctx, w, posting, c, was, shops, now)
            if order is not was and was is not None:
                orders[c.trade_no] = order
                # Paid once per batch: a second command finds it paid and changes nothing.
                changed[c.trade_no] = (was.state, order)
                events.append({"order_id": order.id, "from_state": was.state,
                               "to_state": order.state, "actor": c.actor or
                               f"subscriber:{c.subscriber.id}", "note": None, "at": now})
            paid[i].order, paid[i].merchant = order, shops[order.merchant_id]
        except PaycellError as exc:
            paid[i].error = exc
    w.write(conn)
    if changed:
        update_many(conn, t, ("id", "state"),
                    ("state", "updated_at", "paid_at", "paid_via", "release_at"),
                    [(o.id, st, o.state, o.updated_at, o.paid_at, o.paid_via, o.release_at)
                     for st, o in changed.values()])
        insert_many(conn, payment_events, events)
        # The orders' open SMS codes die (one text for any number of orders).
        update_many(conn, sms_confirmations, ("order_id", "state"), ("state",),
                    [(o.id, confirmations.OPEN, confirmations.DEAD)
                     for _, o in changed.values()])
        # The merchants' notifications, as orders.notify writes them one at a time.
        enqueue_many(conn, [
            Outgoing(o.merchant_id, f"payment.{o.state}", public_view(o, shops[o.merchant_id]),
                     url)
            for _, o in changed.values()
            if (url := o.notify_url or shops[o.merchant_id].default_notify_url)], now)
    posting.finish()


def _one(ctx: Context, w: Wallets, posting: Posting, c: PayCommand, order: Order | None,
         shops: dict[int, Any], now: int) -> Order:
    """Check and pay one command against the batch so far: the order after it, or raise."""
    sub = c.subscriber
    if order is None or order.payer_subscriber_id != sub.id:
        raise OrderNotFoundError(f"you have no payment request {c.trade_no}")
    if order.state in rules.PAID_STATES and order.paid_via is not None:
        return order  # paid already (a retry): its current state
    if order.state == rules.WAITING and now >= order.expires_at:
        raise OrderExpiredError("this order expired before it was paid",
                                expired_at=order.expires_at)
    action = rules.pay_action(order.kind)
    target = rules.next_state(order.state, action)
    if c.pin is not None:
        w.verify_pin(sub.id, c.pin)
    shop = shops[order.merchant_id]
    if shop.state != "active" or shop.payable_account_id is None:
        raise MerchantNotPayableError("this merchant cannot take payments now",
                                      state=shop.state)
    w.check_outflow(sub.id, order.amount_fen)
    escrow = order.kind == "escrow"
    result = posting.post(TransferRequest(
        id=order.transfer_id, debit_account_id=sub.wallet_account_id,
        credit_account_id=shop.payable_account_id, amount=order.amount_fen,
        ledger=order.currency,
        code=int(chart.TransferCode.ESCROW_HOLD if escrow else chart.TransferCode.PURCHASE),
        flags=TransferFlags.PENDING if escrow else 0, ref=f"order {order.trade_no}"))
    if isinstance(result.error, le.AccountOverdraftError):
        raise InsufficientBalanceError(
            "your balance does not cover this payment; top up or pay with a card",
            available_fen=result.error.detail.get("available_fen"))
    if result.error is not None:
        raise result.error
    w.count_outflow(sub.id, order.amount_fen)
    release_at = (now + ctx.settings.escrow_auto_release_days * 86_400_000_000
                  if escrow else None)
    return replace(order, state=target, updated_at=now, paid_at=now, paid_via=c.via,
                   release_at=release_at)
