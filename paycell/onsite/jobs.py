"""On-site worker jobs (filled in by the on-site work)."""

from __future__ import annotations

from paycell.context import Context


def run_onsite_jobs(ctx: Context) -> int:
    """Worker job: OTA sends and retries, e-cash clearing; how many things changed."""
    return 0
