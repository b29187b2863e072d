"""The ``paycell`` command line."""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from paycell.bench.cli import bench_app
from paycell.config import get_settings
from paycell.demo import demo_app
from paycell.funding.cash_cli import agents_app, vouchers_app
from paycell.funding.cli import funding_app
from paycell.merchants.cli import merchants_app
from paycell.notifications.cli import notifications_app
from paycell.onsite.cli import onsite_app
from paycell.operators.cli import operators_app
from paycell.partners.cli import partners_app
from paycell.payments.cli import payments_app
from paycell.reconciliation.cli import reconcile_app
from paycell.settlement.cli import settle_app
from paycell.subscribers.cli import sms_app, subscribers_app

app = typer.Typer(help="paycell: a mobile payment platform on one double-entry ledger.",
                  no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
app.add_typer(bench_app, name="bench")
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(sms_app, name="sms")
app.add_typer(vouchers_app, name="vouchers")
app.add_typer(agents_app, name="agents")
app.add_typer(funding_app, name="funding")
app.add_typer(operators_app, name="operators")
app.add_typer(merchants_app, name="merchants")
app.add_typer(payments_app, name="payments")
app.add_typer(notifications_app, name="notifications")
app.add_typer(onsite_app, name="onsite")
app.add_typer(settle_app, name="settle")
app.add_typer(partners_app, name="partners")
app.add_typer(reconcile_app, name="reconcile")
console = Console()


def _url(url: str | None) -> str:
    return url or get_settings().database_url


UrlOpt = typer.Option(None, "--database-url", help="defaults to PAYCELL_DATABASE_URL")


@db_app.command("upgrade")
def db_upgrade(database_url: str | None = UrlOpt) -> None:
    """Apply every migration not yet applied (idempotent)."""
    from paycell.migrate import current, upgrade

    url = _url(database_url)
    upgrade(url)
    console.print(f"database at revision [bold]{current(url)}[/]")


@db_app.command("current")
def db_current(database_url: str | None = UrlOpt) -> None:
    """Print the schema revision."""
    from paycell.migrate import current

    console.print(current(_url(database_url)) or "empty (run `paycell db upgrade`)")


@app.command()
def audit(database_url: str | None = UrlOpt) -> None:
    """Prove the ledger consistent; exit 1 on any violation."""
    from paycell.db import make_engine
    from paycell.ledger.audit import audit as run_audit

    engine = make_engine(_url(database_url))
    with Progress(TextColumn("hash chain"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("chain", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = run_audit(engine, progress)
    engine.dispose()
    table = Table(title=f"ledger audit: {report.accounts} accounts, {report.transfers} transfers")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    for c in report.checks:
        table.add_row(c.name, "[green]ok[/]" if c.ok else "[red]FAILED[/]", c.detail)
    console.print(table)
    for c in report.checks:
        for p in c.problems[1:]:
            console.print(f"  [red]{c.name}[/]: {p}")
    if not report.ok:
        # One plain line per failure, unwrapped, for logs and grep.
        for c in report.checks:
            if not c.ok:
                print(f"FAILED: {c.name}: {c.detail}")
        console.print("[red bold]audit failed[/]")
        raise typer.Exit(1)
    console.print("[green bold]audit clean[/]")


@app.command()
def serve(
    host: str | None = typer.Option(None), port: int | None = typer.Option(None),
    workers: int = typer.Option(1, help="worker processes, each accepting connections on a "
                                        "socket of its own (SO_REUSEPORT)"),
) -> None:
    """Serve the API and web pages (and, unless PAYCELL_RUN_WORKERS=0, the background jobs)."""
    import logging

    from paycell.api.serve import serve as serve_app

    # uvicorn configures only its own loggers; without this the workers' lines are lost.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    s = get_settings()
    # The app reads where it listens from its settings (the mounted bank and carrier
    # simulators are called at this address): pass --host/--port on to it.
    for name, value in (("PAYCELL_HOST", host), ("PAYCELL_PORT", port)):
        if value is not None:
            os.environ[name] = str(value)
    get_settings.cache_clear()
    serve_app(host=host or s.host, port=port or s.port, workers=workers)


@app.command()
def chaos(
    seconds: float = typer.Option(600.0, min=5.0, help="seconds of traffic under faults"),
    wallets: int = typer.Option(16, min=2), clients: int = typer.Option(6, min=1),
    workers: int = typer.Option(2, min=1, help="API worker processes"),
    faults: bool = typer.Option(True, "--faults/--no-faults"),
    seed: int | None = typer.Option(None, help="random seed, to replay a schedule"),
    out: str = typer.Option("bench/results/chaos.json", help="where to write the figures"),
) -> None:
    """The bank test: P2P transfers over HTTP while the API and PostgreSQL are killed;
    exit 1 on any violation (docs/reliability.md)."""
    from pathlib import Path

    from paycell.devtools.chaos import run, write_json

    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def say(text: str) -> None:
            bar.update(task, description=text)
            console.print(f"[dim]· {text}[/]")

        report = run(seconds, wallets=wallets, clients=clients, workers=workers,
                     faults=faults, seed=seed, progress=say)
    table = Table(title="bank test with faults")
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, n in [*(("operations " + k, v) for k, v in sorted(report.ops.items())),
                    ("unknown that landed", report.unknown_landed),
                    ("retries", report.retries),
                    *(("  retried after " + k, v) for k, v in sorted(
                        report.retried_after.items())),
                    ("snapshots", report.snapshots),
                    *(("fault " + k, v) for k, v in sorted(report.faults.items())),
                    ("P2P transfers in the ledger", report.transfers_in_ledger),
                    ("violations", len(report.violations))]:
        table.add_row(name, str(n))
    console.print(table)
    for v in report.violations[:20]:
        console.print(f"[red]{v}[/]")
    console.print("audit: " + ("[green]clean[/]" if report.audit_ok else "[red]FAILED[/]"))
    write_json(report, Path(out))
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def worker() -> None:
    """Run the background jobs (hold expiry, ...) as their own process."""
    from paycell.worker import run_forever

    run_forever()


def main() -> None:  # pragma: no cover
    sys.exit(app())
