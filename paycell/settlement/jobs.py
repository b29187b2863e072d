"""The worker's settlement job: clear the business dates that are over (oldest first, up to
a week back) and write their reports. Payout batches stay an operator's decision."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from paycell.context import Context
from paycell.errors import PaycellError
from paycell.settlement.calendar import business_date
from paycell.settlement.tables import days

log = logging.getLogger(__name__)
LOOKBACK_DAYS = 7


def run_settlement_jobs(ctx: Context) -> int:
    """What the worker runs every ``settlement_job_interval_s``; returns how many dates it
    cleared. Idempotent: a cleared date is skipped."""
    from paycell.settlement.clearing import clear_date
    from paycell.settlement.report import write_report

    s = ctx.settings
    last_over = business_date(ctx.clock.now_us() - s.clearing_grace_s * 1_000_000,
                              s.clearing_cutoff) - timedelta(days=1)
    with ctx.engine.connect() as conn:
        done = {r[0] for r in conn.execute(select(days.c.business_date).where(
            days.c.business_date >= (last_over - timedelta(days=LOOKBACK_DAYS)).isoformat(),
            days.c.blocked == 0))}
    cleared = 0
    for back in range(LOOKBACK_DAYS, -1, -1):
        day = last_over - timedelta(days=back)
        if day.isoformat() in done:
            continue
        try:
            clear_date(ctx, day)
            write_report(ctx, day.isoformat())
            cleared += 1
        except PaycellError as exc:  # not over yet (clock skew): next time
            log.info("clearing %s waits: %s", day, exc.code)
    return cleared
