"""The worker's partners job."""

from __future__ import annotations

from paycell.context import Context


def run_partners_jobs(ctx: Context) -> int:
    """What the worker runs every ``settlement_job_interval_s``; returns how much it did."""
    return 0
