"""The worker's reconciliation job: finish statements whose matching or posting was
interrupted (imported or classified, not posted), e.g. by a crash or a reserve that was
short until another statement came in."""

from __future__ import annotations

from sqlalchemy import select

from paycell.context import Context
from paycell.errors import PaycellError
from paycell.reconciliation.matching import match
from paycell.reconciliation.tables import statements


def run_reconciliation_jobs(ctx: Context) -> int:
    """What the worker runs every ``settlement_job_interval_s``; returns how much it did."""
    with ctx.engine.connect() as conn:
        ids = list(conn.execute(select(statements.c.id).where(
            statements.c.state.in_(("imported", "classified"))).order_by(statements.c.id)
            .limit(20)).scalars())
    done = 0
    for sid in ids:
        try:
            match(ctx, sid)
            done += 1
        except PaycellError:
            continue  # stays for the next run; the CLI and API show the reason
    return done
