"""The payments worker job: expire unpaid orders, pay orders whose top-up arrived, release
escrow whose time has come. Safe to run in several workers at once: every change happens
under the order's row lock and through idempotent ledger ids."""

from __future__ import annotations

from sqlalchemy import select

from paycell.context import Context
from paycell.payments import confirmations, rules
from paycell.payments.errors import OrderStateError
from paycell.payments.escrow import auto_release
from paycell.payments.orders import find, transition
from paycell.payments.paying import settle_funded_orders
from paycell.payments.tables import payment_orders


def close_expired(ctx: Context, limit: int = 500) -> int:
    """Close waiting orders past ``expires_at`` (``payment.closed`` is sent); how many.

    An order whose card or phone-bill top-up is still unanswered waits for it: closing it
    now would leave the subscriber charged for nothing (the top-up still lands in the
    wallet either way)."""
    t, now = payment_orders, ctx.clock.now_us()
    with ctx.engine.connect() as conn:
        ids = conn.execute(select(t.c.id).where(
            t.c.state == rules.WAITING, t.c.expires_at <= now, t.c.funding_ref.is_(None))
            .order_by(t.c.expires_at).limit(limit)).scalars().all()
    closed = 0
    for order_id in ids:
        with ctx.engine.begin() as conn:
            row = find(conn, order_id=order_id, lock=True)
            if row.state != rules.WAITING or row.funding_ref is not None:
                continue
            try:
                transition(ctx, conn, row, "expire", "system", now, note="not paid in time",
                           closed_at=now)
            except OrderStateError:
                continue
            confirmations.retire_for_order(conn, order_id)
            closed += 1
    return closed


def run_payment_jobs(ctx: Context) -> int:
    """The worker's payments job; how many orders changed."""
    return settle_funded_orders(ctx) + close_expired(ctx) + auto_release(ctx)
