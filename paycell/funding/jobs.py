"""The status-query job: resolve top-ups and withdrawals whose outcome is not known yet.

A pending operation is due when its ``next_check_at`` has passed (the first query comes
``funding_query_after_s`` after the call, long after the call's own timeout, so the job
does not race a request still in flight). Each is asked about by reference; the answer is
applied under the row lock, so several workers may run the job at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Table, select

from paycell.context import Context
from paycell.funding import topups, withdrawals
from paycell.funding.tables import topups as topups_table
from paycell.funding.tables import withdrawals as withdrawals_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PendingOperation:
    kind: str  # topup | withdrawal
    id: str
    subscriber_id: int
    partner: str
    amount_fen: int
    created_at: int
    next_check_at: int | None

    @property
    def reference(self) -> str:
        return f"{self.kind}:{self.id}"


def pending_operations(ctx: Context, *, due_only: bool = False, limit: int = 1000
                       ) -> list[PendingOperation]:
    """Top-ups and withdrawals still waiting for their partner's answer, oldest first."""
    now = ctx.clock.now_us()
    out: list[PendingOperation] = []
    for kind, t in (("topup", topups_table), ("withdrawal", withdrawals_table)):
        partner = t.c.partner if t is topups_table else t.c.bank
        stmt = select(t.c.id, t.c.subscriber_id, partner.label("partner"), t.c.amount_fen,
                      t.c.created_at, t.c.next_check_at).where(t.c.state == "pending")
        if due_only:
            stmt = stmt.where(t.c.next_check_at <= now)
        stmt = stmt.order_by(t.c.next_check_at, t.c.id).limit(limit)
        with ctx.engine.connect() as conn:
            out += [PendingOperation(kind, r.id, r.subscriber_id, r.partner, r.amount_fen,
                                     r.created_at, r.next_check_at) for r in conn.execute(stmt)]
    return sorted(out, key=lambda p: (p.created_at, p.id))


def _due(ctx: Context, table: Table, force: bool, limit: int) -> list[str]:
    stmt = select(table.c.id).where(table.c.state == "pending")
    if not force:
        stmt = stmt.where(table.c.next_check_at <= ctx.clock.now_us())
    with ctx.engine.connect() as conn:
        return list(conn.execute(stmt.order_by(table.c.next_check_at).limit(limit)).scalars())


def resolve_pending(ctx: Context, *, force: bool = False, limit: int = 200) -> int:
    """Query the partner about every due pending operation (all of them if ``force``) and
    apply the answers. Returns how many were settled (confirmed or failed). One failing
    query is logged and does not stop the others."""
    settled = 0
    for table, check in ((topups_table, topups.check), (withdrawals_table, withdrawals.check)):
        for record in _due(ctx, table, force, limit):
            try:
                if check(ctx, record).state != "pending":
                    settled += 1
            except Exception:
                log.exception("could not resolve %s %s; next run tries again",
                              table.name, record)
    return settled
