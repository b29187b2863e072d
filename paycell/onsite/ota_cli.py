"""``paycell onsite ota-jobs | ota-queue | ota-send | hot-list``: OTA jobs and the e-cash hot
list from the command line (registered on ``onsite_app`` in ``cli.py``)."""

from __future__ import annotations

import typer
from rich.table import Table

from paycell.clikit import UrlOpt
from paycell.clikit import cli_context as _context
from paycell.clock import rfc3339
from paycell.console import console
from paycell.onsite import ota  # also registers the card-lost hook (lost -> a lock job)


def ota_jobs(
    iccid: str | None = typer.Option(None, help="only this SIM's jobs"),
    state: str | None = typer.Option(None, help="queued, sent, confirmed, failed"),
    limit: int = typer.Option(50, min=1, max=1000),
    database_url: str | None = UrlOpt,
) -> None:
    """OTA jobs, newest first."""
    with _context(database_url) as ctx:
        jobs = ota.list_jobs(ctx, iccid=iccid, state=state, limit=limit)
    table = Table("id", "ICCID", "MSISDN", "command", "state", "attempts", "counter",
                  "last error", "created")
    for j in jobs:
        table.add_row(str(j.id), j.iccid, j.msisdn, j.command, j.state, str(j.attempts),
                      "" if j.counter is None else str(j.counter), j.last_error or "",
                      rfc3339(j.created_at))
    console.print(table)


def ota_queue(
    iccid: str = typer.Argument(..., help="the SIM's ICCID"),
    command: str = typer.Argument(..., help="install, personalise, lock, unlock, delete"),
    msisdn: str | None = typer.Option(None, help="the SIM's number (default: the known one)"),
    card_id: int | None = typer.Option(None, help="personalise: the card"),
    database_url: str | None = UrlOpt,
) -> None:
    """Queue an OTA job (the worker, or ``ota-send``, sends it)."""
    with _context(database_url) as ctx:
        job = ota.create_job(ctx, iccid, command, actor="cli", msisdn=msisdn,
                             card_id=card_id)
    console.print(f"OTA job [bold]{job.id}[/]: {job.command} on SIM {job.iccid} "
                  f"({job.msisdn}), {job.state}")


def ota_send(
    job_id: int | None = typer.Argument(None, help="send this job now (default: every "
                                        "due job, as the worker does)"),
    database_url: str | None = UrlOpt,
) -> None:
    """Send OTA jobs now: one by id, or every due one (first sends and retries)."""
    with _context(database_url) as ctx:
        if job_id is None:
            n = ota.send_due(ctx)
            console.print(f"{n} OTA job(s) sent or given up")
            return
        job = ota.send_job(ctx, job_id)
    console.print(f"OTA job {job.id}: {job.state}, attempt {job.attempts}, "
                  f"counter {job.counter}")


def hot_list(database_url: str | None = UrlOpt) -> None:
    """The cards terminals must refuse offline."""
    from paycell.onsite import ecash

    with _context(database_url) as ctx:
        entries = ecash.hot_list(ctx)
    table = Table("PAN", "PSN", "reason", "since")
    for e in entries:
        table.add_row(e.pan, e.psn, e.reason, rfc3339(e.since))
    console.print(table)
