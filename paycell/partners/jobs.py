"""The worker's partners job: the expansion check every run (its condition is re-read each
time; a merchant's fee is paid once, ever), and, once a month has ended, that month's POS
maintenance. Both are idempotent, so running them every ``settlement_job_interval_s`` and
from several workers at once is safe."""

from __future__ import annotations

from paycell.context import Context
from paycell.partners import fees
from paycell.settlement import calendar as bizcal


def run_partners_jobs(ctx: Context) -> int:
    """What the worker runs every ``settlement_job_interval_s``; returns how many fees it
    made payable. The maintenance of the month before the current (CST) one is accrued on
    every run of the new month: after the first, the run finds it done and writes nothing."""
    made = len(fees.check_expansion(ctx).created)
    today = bizcal.business_date(ctx.clock.now_us())  # the calendar day in CST
    made += len(fees.accrue_maintenance(ctx, fees.previous_month_label(today)).created)
    return made
