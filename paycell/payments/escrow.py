"""Guaranteed payment (担保支付): the buyer's money is held until the goods arrive.

Paying an escrow order places a hold ``pay:<trade_no>`` wallet -> merchant payable (see
``paying.py``). From ``held``:
- the buyer confirms receipt, or ``escrow_auto_release_days`` pass: the hold is posted in
  full (``pay:<trade_no>:release``) and the order is ``released``;
- the merchant refunds it all: the hold is voided (``refunds.py``);
- the buyer opens a dispute: ``disputed``, frozen (no auto-release) until an operator's
  decision is approved by a second operator (maker-checker, ``operators.approvals``):
  refund (void), release (post in full) or split (post the merchant's part; the rest of
  the hold goes back to the buyer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from paycell.context import Context
from paycell.funding.cash_common import AlreadyAppliedError, post_recorded
from paycell.ledger import TransferFlags, TransferRequest, TransferResult, chart
from paycell.operators import approvals
from paycell.operators.model import Operator
from paycell.payments import rules
from paycell.payments.errors import (
    DisputeNotFoundError,
    DisputeSplitInvalidError,
    PaymentInvalidError,
)
from paycell.payments.orders import Order, find, get_order, to_order, transition
from paycell.payments.paying import payer_order
from paycell.payments.tables import payment_disputes, payment_orders, payment_refunds
from paycell.subscribers.service import Subscriber, verify_pin

DISPUTE_ACTION = "dispute_resolve"
OUTCOMES = ("refund", "release", "split")


@dataclass(frozen=True)
class Dispute:
    id: int
    order_id: int
    reason: str
    state: str  # open | resolved
    outcome: str | None
    buyer_fen: int | None
    merchant_fen: int | None
    decided_by: str | None
    approved_by: str | None
    created_at: int
    resolved_at: int | None


def _dispute(r: Any) -> Dispute:
    return Dispute(r.id, r.order_id, r.reason, r.state, r.outcome, r.buyer_fen, r.merchant_fen,
                   r.decided_by, r.approved_by, r.created_at, r.resolved_at)


class _Moved(Exception):
    """Internal: the order left the expected state before we locked it."""


def _settle_hold(ctx: Context, order: Order, *, merchant_fen: int, action: str, actor: str,
                 on_record: Any = None, note: str | None = None) -> Order:
    """Post ``merchant_fen`` of the hold (0: void it) and move the order by ``action``,
    atomically. Idempotent through the ledger ids; :class:`_Moved` if the order is no
    longer where ``action`` can start."""
    if merchant_fen > 0:
        req = TransferRequest(
            id=f"{order.transfer_id}:release", pending_id=order.transfer_id, ledger=None,
            amount=merchant_fen, flags=TransferFlags.POST_PENDING,
            code=int(chart.TransferCode.ESCROW_CONFIRM), ref=f"release {order.trade_no}")
    else:
        req = TransferRequest(
            id=f"{order.transfer_id}:void", pending_id=order.transfer_id, ledger=None,
            flags=TransferFlags.VOID_PENDING, code=int(chart.TransferCode.ESCROW_REFUND),
            ref=f"refund {order.trade_no}")
    now = ctx.clock.now_us()

    def before(conn: Connection) -> None:
        row = find(conn, order_id=order.id, lock=True)
        if action not in rules.TRANSITIONS.get(row.state, {}):
            raise _Moved(row.state)

    def record(conn: Connection, _results: list[TransferResult]) -> None:
        row = find(conn, order_id=order.id, lock=True)
        extra: dict[str, Any] = {}
        if merchant_fen > 0:
            extra["released_at"] = now
        if merchant_fen < row.amount_fen:
            extra["refunded_fen"] = row.amount_fen - merchant_fen
        if on_record is not None:
            on_record(conn, now)
        transition(ctx, conn, row, action, actor, now, note=note, **extra)

    post_recorded(ctx.ledger, [req], before=before, record=record)
    return get_order(ctx, order.trade_no)


def confirm_receipt(ctx: Context, subscriber: Subscriber, trade_no: str, pin: str) -> Order:
    """The buyer got the goods: release the held money to the merchant. Needs the PIN.
    Idempotent (a released order answers itself); ``order_state_invalid`` otherwise."""
    order = payer_order(ctx, subscriber, trade_no)
    if order.state == rules.RELEASED:
        return order
    rules.next_state(order.state, "release")
    verify_pin(ctx, subscriber.id, pin)
    try:
        return _settle_hold(ctx, order, merchant_fen=order.amount_fen, action="release",
                            actor=f"subscriber:{subscriber.id}")
    except (_Moved, AlreadyAppliedError):
        order = get_order(ctx, trade_no)
        if order.state != rules.RELEASED:
            rules.next_state(order.state, "release")
        return order


def auto_release(ctx: Context, limit: int = 200) -> int:
    """Worker job: release held orders whose ``release_at`` has come (never a disputed
    one). Returns how many were released; each exactly once whatever runs concurrently."""
    t = payment_orders
    now = ctx.clock.now_us()
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(t).where(t.c.state == rules.HELD, t.c.release_at <= now)
                            .order_by(t.c.release_at).limit(limit)).all()
    released = 0
    for row in rows:
        try:
            _settle_hold(ctx, to_order(row), merchant_fen=row.amount_fen, action="auto_release",
                         actor="system", note="no confirmation in time")
            released += 1
        except (_Moved, AlreadyAppliedError):
            continue
    return released


def open_dispute(ctx: Context, subscriber: Subscriber, trade_no: str, reason: str) -> Dispute:
    """The buyer disputes a held order before release: it is frozen until an operator's
    decision is approved. Idempotent: a second call answers the open dispute."""
    reason = (reason or "").strip()
    if not 5 <= len(reason) <= 500:
        raise PaymentInvalidError("say what went wrong in 5 to 500 characters", field="reason")
    order = payer_order(ctx, subscriber, trade_no)
    now = ctx.clock.now_us()
    try:
        with ctx.engine.begin() as conn:
            row = find(conn, order_id=order.id, lock=True)
            existing = conn.execute(select(payment_disputes).where(
                payment_disputes.c.order_id == order.id)).first()
            if existing is not None:
                return _dispute(existing)
            conn.execute(payment_disputes.insert().values(
                order_id=order.id, reason=reason, state="open", created_at=now))
            transition(ctx, conn, row, "dispute", f"subscriber:{subscriber.id}", now,
                       note=reason[:200])
    except IntegrityError:
        pass
    return dispute_of_order(ctx, order.id)


def dispute_of_order(ctx: Context, order_id: int) -> Dispute:
    with ctx.engine.connect() as conn:
        row = conn.execute(select(payment_disputes).where(
            payment_disputes.c.order_id == order_id)).first()
    if row is None:
        raise DisputeNotFoundError("this order has no dispute")
    return _dispute(row)


def get_dispute(ctx: Context, dispute_id: int) -> Dispute:
    with ctx.engine.connect() as conn:
        row = conn.execute(select(payment_disputes).where(
            payment_disputes.c.id == dispute_id)).first()
    if row is None:
        raise DisputeNotFoundError(f"no dispute {dispute_id}")
    return _dispute(row)


def list_disputes(ctx: Context, state: str | None = "open", limit: int = 100) -> list[Dispute]:
    stmt = select(payment_disputes).order_by(payment_disputes.c.id.desc()).limit(limit)
    if state:
        stmt = stmt.where(payment_disputes.c.state == state)
    with ctx.engine.connect() as conn:
        return [_dispute(r) for r in conn.execute(stmt)]


def _split(order: Order, outcome: str, buyer_fen: int | None) -> int:
    """How much goes back to the buyer for ``outcome``."""
    if outcome == "refund":
        return order.amount_fen
    if outcome == "release":
        return 0
    if outcome != "split":
        raise PaymentInvalidError(f"outcome is one of {', '.join(OUTCOMES)}", field="outcome")
    if buyer_fen is None or not 0 < buyer_fen < order.amount_fen:
        raise DisputeSplitInvalidError(
            f"a split gives the buyer between 1 and {order.amount_fen - 1} fen",
            amount_fen=order.amount_fen)
    return buyer_fen


def propose_resolution(ctx: Context, operator: Operator, dispute_id: int, outcome: str,
                       buyer_fen: int | None = None, note: str | None = None) -> Any:
    """An operator proposes how to settle a dispute; a second operator approves it
    (``POST /v1/approvals/{id}/approve``), which carries it out."""
    dispute = get_dispute(ctx, dispute_id)
    if dispute.state != "open":
        raise DisputeNotFoundError(f"dispute {dispute_id} is resolved already")
    with ctx.engine.connect() as conn:
        order = to_order(find(conn, order_id=dispute.order_id))
    back = _split(order, outcome, buyer_fen)
    payload = {"dispute_id": dispute_id, "outcome": outcome, "buyer_fen": back,
               "decided_by": operator.name}
    return approvals.propose(ctx, operator, DISPUTE_ACTION, f"dispute:{dispute_id}", payload,
                             note or f"{outcome}: {back} fen back to the buyer")


def resolve_dispute(ctx: Context, dispute_id: int, buyer_fen: int, *, decided_by: str,
                    approved_by: str) -> Order:
    """Carry out an approved decision: ``buyer_fen`` back to the buyer, the rest of the hold
    to the merchant. Idempotent (a resolved dispute answers its order)."""
    dispute = get_dispute(ctx, dispute_id)
    order = get_order_by_id(ctx, dispute.order_id)
    if dispute.state == "resolved":
        return order
    merchant_fen = order.amount_fen - buyer_fen
    action = rules.split_action(order.amount_fen, buyer_fen)
    outcome = {"resolve_refund": "refund", "resolve_release": "release",
               "resolve_split": "split"}[action]

    def on_record(conn: Connection, now: int) -> None:
        conn.execute(update(payment_disputes).where(payment_disputes.c.id == dispute_id).values(
            state="resolved", outcome=outcome, buyer_fen=buyer_fen, merchant_fen=merchant_fen,
            decided_by=decided_by, approved_by=approved_by, resolved_at=now))
        if buyer_fen:
            conn.execute(payment_refunds.insert().values(
                refund_no=f"D{dispute_id}-{order.trade_no}"[:32], order_id=order.id,
                out_request_no=f"dispute:{dispute_id}", amount_fen=buyer_fen,
                reason=f"dispute {dispute_id} resolved: {outcome}", source="dispute",
                created_at=now))

    try:
        return _settle_hold(ctx, order, merchant_fen=merchant_fen, action=action,
                            actor=f"operator:{approved_by}", on_record=on_record,
                            note=f"dispute {dispute_id}: {outcome} by {decided_by}, "
                                 f"approved by {approved_by}")
    except (_Moved, AlreadyAppliedError):
        return get_order_by_id(ctx, dispute.order_id)


def get_order_by_id(ctx: Context, order_id: int) -> Order:
    with ctx.engine.connect() as conn:
        return to_order(find(conn, order_id=order_id))


def _approved(ctx: Context, payload: dict[str, Any], _approval: Any,
              approver: Operator) -> dict[str, Any]:
    order = resolve_dispute(ctx, int(payload["dispute_id"]), int(payload["buyer_fen"]),
                            decided_by=str(payload["decided_by"]), approved_by=approver.name)
    return {"trade_no": order.trade_no, "state": order.state,
            "refunded_fen": order.refunded_fen}


approvals.register(DISPUTE_ACTION, _approved)
