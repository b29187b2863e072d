"""Payment orders (remote payment, 远程支付): created by a merchant for a subscriber's number,
confirmed by the subscriber in the app or by SMS, then paid, closed or refunded.

Every state change goes through :func:`transition` under the order's row lock: it checks the
move against ``rules.TRANSITIONS``, writes the order, its event log row and the merchant's
notification in the caller's transaction, so that a notification exists exactly when the
change committed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, select, update

from paycell.clock import rfc3339
from paycell.context import Context
from paycell.funding.cash_common import locking
from paycell.merchants.model import Merchant
from paycell.notifications import guard
from paycell.payments import rules
from paycell.payments.errors import (
    OrderNotFoundError,
    OutTradeNoConflictError,
    PaymentInvalidError,
)
from paycell.payments.tables import payment_events, payment_orders
from paycell.subscribers.service import mask_msisdn

OUT_TRADE_NO = re.compile(r"^[A-Za-z0-9_\-.:]{1,64}$")
MAX_FEN = 10**13
CURRENCIES = ("CNY",)


@dataclass(frozen=True)
class Order:
    id: int
    trade_no: str
    merchant_id: int
    store_id: int | None
    out_trade_no: str
    kind: str
    amount_fen: int
    currency: str
    subject: str
    payer_subscriber_id: int
    payer_msisdn: str
    notify_url: str | None
    return_url: str | None
    state: str
    refunded_fen: int
    paid_via: str | None
    funding_ref: str | None
    expires_at: int
    paid_at: int | None
    release_at: int | None
    released_at: int | None
    closed_at: int | None
    created_at: int
    updated_at: int

    @property
    def refundable_fen(self) -> int:
        return self.amount_fen - self.refunded_fen if self.state in rules.PAID_STATES else 0

    @property
    def transfer_id(self) -> str:
        """The ledger transfer that paid (or, for escrow, holds) the order."""
        return f"pay:{self.trade_no}"


FIELDS = [c.name for c in payment_orders.columns if c.name != "request_json"]


def to_order(row: Any) -> Order:
    return Order(**{name: getattr(row, name) for name in FIELDS})


@dataclass(frozen=True)
class OrderRequest:
    """What a merchant asks for. ``expires_in_s`` None: the platform default (15 min)."""

    out_trade_no: str
    amount_fen: int
    subject: str
    payer_msisdn: str
    currency: str = "CNY"
    kind: str = "direct"
    notify_url: str | None = None
    return_url: str | None = None
    expires_in_s: int | None = None
    store_id: int | None = None

    def fingerprint(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _check_url(name: str, url: str | None) -> None:
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 512:
        raise PaymentInvalidError(f"{name} must be an http(s) URL of at most 512 characters",
                                  field=name)


def validate(ctx: Context, req: OrderRequest) -> None:
    """Refuse a malformed request before anything is looked up (``payment_invalid``,
    ``field`` names the culprit)."""
    if not OUT_TRADE_NO.match(req.out_trade_no or ""):
        raise PaymentInvalidError("out_trade_no is 1 to 64 letters, digits or _-.:",
                                  field="out_trade_no")
    if (not isinstance(req.amount_fen, int) or isinstance(req.amount_fen, bool)
            or not 0 < req.amount_fen <= MAX_FEN):
        raise PaymentInvalidError("amount_fen is a positive whole number of fen",
                                  field="amount_fen")
    if req.currency not in CURRENCIES:
        raise PaymentInvalidError(f"currency must be one of {', '.join(CURRENCIES)}",
                                  field="currency")
    if not req.subject.strip() or len(req.subject) > 128:
        raise PaymentInvalidError("subject is 1 to 128 characters", field="subject")
    if req.kind not in ("direct", "escrow"):
        raise PaymentInvalidError("kind is direct or escrow", field="kind")
    _check_url("notify_url", req.notify_url)
    why = guard.url_refusal(ctx.settings, req.notify_url)
    if why is not None:
        raise PaymentInvalidError(f"notify_url must reach a public address: {why}",
                                  field="notify_url")
    _check_url("return_url", req.return_url)
    top = ctx.settings.payment_max_expiry_s
    if req.expires_in_s is not None and not 60 <= req.expires_in_s <= top:
        raise PaymentInvalidError(f"expires_in_s is between 60 and {top}",
                                  field="expires_in_s")


def find(conn: Connection, *, merchant_id: int | None = None, trade_no: str | None = None,
         out_trade_no: str | None = None, order_id: int | None = None,
         lock: bool = False) -> Any:
    t = payment_orders
    stmt = select(t)
    if order_id is not None:
        stmt = stmt.where(t.c.id == order_id)
    if trade_no is not None:
        stmt = stmt.where(t.c.trade_no == trade_no)
    if out_trade_no is not None:
        stmt = stmt.where(t.c.out_trade_no == out_trade_no)
    if merchant_id is not None:
        stmt = stmt.where(t.c.merchant_id == merchant_id)
    return conn.execute(locking(conn, stmt) if lock else stmt).first()


def create_order(ctx: Context, merchant: Merchant, req: OrderRequest, *,
                 text_code: bool = True) -> tuple[Order, bool]:
    """Create the order and (unless ``text_code`` is false) text the payer a summary with a
    confirmation code.

    Idempotent per (merchant, ``out_trade_no``): the same request again answers the first
    order and ``False``; a different one is :class:`OutTradeNoConflictError` naming the
    first differing field. Refused: ``payment_invalid``, ``payer_not_found`` (no open wallet
    holds the number), ``merchant_not_payable``. A batch of one (``orders_batch.py``).
    """
    from paycell.payments.orders_batch import CreateCommand, create_batch

    return create_batch(ctx, [CreateCommand(merchant, req, text_code)])[0].unwrap()


def _same_or_conflict(row: Any, wanted: dict[str, Any]) -> Order:
    field = rules.first_difference(json.loads(row.request_json), wanted)
    if field is not None:
        raise OutTradeNoConflictError(
            f"out_trade_no {row.out_trade_no!r} was used for a different request "
            f"({field} differs); use a new out_trade_no", field=field,
            trade_no=row.trade_no)
    return to_order(row)


def get_order(ctx: Context, trade_no: str) -> Order:
    with ctx.engine.connect() as conn:
        row = find(conn, trade_no=trade_no)
    if row is None:
        raise OrderNotFoundError(f"no order {trade_no}")
    return to_order(row)


def merchant_order(ctx: Context, merchant_id: int, *, trade_no: str | None = None,
                   out_trade_no: str | None = None) -> Order:
    """One of the merchant's own orders, by either number. Another merchant's order is
    "not found", never shown."""
    if trade_no is None and out_trade_no is None:
        raise PaymentInvalidError("give trade_no or out_trade_no", field="trade_no")
    with ctx.engine.connect() as conn:
        row = find(conn, merchant_id=merchant_id, trade_no=trade_no, out_trade_no=out_trade_no)
    if row is None:
        raise OrderNotFoundError(f"you have no order {trade_no or out_trade_no}")
    return to_order(row)


def list_orders(ctx: Context, *, merchant_id: int | None = None,
                payer_subscriber_id: int | None = None, states: tuple[str, ...] = (),
                before_id: int | None = None, limit: int = 50) -> list[Order]:
    """Orders newest first, filtered; a page ends before ``before_id``."""
    t = payment_orders
    stmt = select(t).order_by(t.c.id.desc()).limit(limit)
    if merchant_id is not None:
        stmt = stmt.where(t.c.merchant_id == merchant_id)
    if payer_subscriber_id is not None:
        stmt = stmt.where(t.c.payer_subscriber_id == payer_subscriber_id)
    if states:
        stmt = stmt.where(t.c.state.in_(states))
    if before_id is not None:
        stmt = stmt.where(t.c.id < before_id)
    with ctx.engine.connect() as conn:
        return [to_order(r) for r in conn.execute(stmt)]


def events_of(ctx: Context, order_id: int) -> list[Any]:
    with ctx.engine.connect() as conn:
        return list(conn.execute(select(payment_events).where(
            payment_events.c.order_id == order_id).order_by(payment_events.c.id)))


def log_event(conn: Connection, order_id: int, from_state: str | None, to_state: str,
              actor: str, now: int, note: str | None = None) -> None:
    conn.execute(payment_events.insert().values(
        order_id=order_id, from_state=from_state, to_state=to_state, actor=actor,
        note=note[:200] if note else None, at=now))


def transition(ctx: Context, conn: Connection, row: Any, action: str, actor: str, now: int,
               note: str | None = None, **values: Any) -> Order:
    """Move the (locked) order ``row`` by ``action``: update it with ``values``, log the
    event, queue the merchant's notification. :class:`OrderStateError` if not allowed."""
    target = rules.next_state(row.state, action)
    after = conn.execute(update(payment_orders).where(
        payment_orders.c.id == row.id, payment_orders.c.state == row.state)
        .values(state=target, updated_at=now, **values)
        .returning(*payment_orders.c)).first()
    assert after is not None, "transitions run under the order's row lock"
    log_event(conn, row.id, row.state, target, actor, now, note)
    order = to_order(after)
    notify(ctx, conn, order, now)
    return order


def notify(ctx: Context, conn: Connection, order: Order, now: int) -> str | None:
    """Queue ``payment.<state>`` for the merchant, in this transaction (none without a URL)."""
    from paycell.merchants.service import to_merchant
    from paycell.merchants.tables import merchants
    from paycell.notifications.service import enqueue

    # Read through ``conn``: a second connection would wait for this transaction's lock.
    merchant = to_merchant(conn.execute(select(merchants).where(
        merchants.c.id == order.merchant_id)).one())
    url = order.notify_url or merchant.default_notify_url
    if not url:
        return None
    return enqueue(conn, merchant_id=order.merchant_id, event=f"payment.{order.state}",
                   payload=public_view(order, merchant), url=url, now_us=now)


def public_view(order: Order, merchant: Merchant) -> dict[str, Any]:
    """The order as merchants see it (API answers and notifications)."""
    def t(us: int | None) -> str | None:
        return None if us is None else rfc3339(us)

    return {
        "trade_no": order.trade_no, "out_trade_no": order.out_trade_no,
        "merchant_code": merchant.code, "kind": order.kind, "state": order.state,
        "amount_fen": order.amount_fen, "currency": order.currency,
        "refunded_fen": order.refunded_fen, "subject": order.subject,
        "payer": mask_msisdn(order.payer_msisdn), "paid_via": order.paid_via,
        "created_at": t(order.created_at), "expires_at": t(order.expires_at),
        "paid_at": t(order.paid_at), "release_at": t(order.release_at),
        "released_at": t(order.released_at), "closed_at": t(order.closed_at),
    }


def close_order(ctx: Context, merchant: Merchant, trade_no: str | None = None,
                out_trade_no: str | None = None) -> Order:
    """The merchant closes an unpaid order: it can no longer be paid. Idempotent (closing a
    closed order answers it); a paid order is :class:`OrderStateError`."""
    order = merchant_order(ctx, merchant.id, trade_no=trade_no, out_trade_no=out_trade_no)
    if order.state == rules.CLOSED:
        return order
    with ctx.engine.begin() as conn:
        row = find(conn, order_id=order.id, lock=True)
        if row.state == rules.CLOSED:
            return to_order(row)
        now = ctx.clock.now_us()
        return transition(ctx, conn, row, "close", f"merchant:{merchant.id}", now,
                          closed_at=now)
