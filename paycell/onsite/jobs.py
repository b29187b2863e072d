"""On-site worker jobs: OTA sends and retries (``ota.send_due``). E-cash clearing needs no
job: batches clear as gates upload them."""

from __future__ import annotations

from paycell.context import Context


def run_onsite_jobs(ctx: Context) -> int:
    """Worker job: send due OTA jobs, retry those without a proof-of-receipt, fail those out
    of attempts; how many jobs changed. Safe in several workers at once."""
    from paycell.onsite import ota

    return ota.send_due(ctx)
