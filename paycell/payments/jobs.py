"""Payment worker jobs (filled in by the payments work)."""

from __future__ import annotations

from paycell.context import Context


def run_payment_jobs(ctx: Context) -> int:
    """Worker job: close expired orders, auto-release escrow; how many changed."""
    return 0
