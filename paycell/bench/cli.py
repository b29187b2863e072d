"""``paycell bench ...``: benchmarks, drawn with rich."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from paycell.bench import Reporter, machine

if TYPE_CHECKING:  # the benchmark itself is imported when a command runs
    from paycell.bench import http as hb
    from paycell.bench import ledger as lb

DATABASES = ("sqlite", "postgresql")
DEFAULT_CONCURRENCY = "1,8,32,128,512,1024"  # as paycell.bench.ledger.DEFAULT_CONCURRENCY

bench_app = typer.Typer(help="Benchmarks (see docs/benchmarks.md).", no_args_is_help=True)
console = Console()
if not console.is_terminal:  # logs of `make bench`: room for the whole table
    console = Console(width=120)


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _levels(value: str) -> list[int]:
    try:
        levels = [int(x) for x in _split(value)]
    except ValueError:
        raise typer.BadParameter("a comma-separated list of whole numbers, e.g. 1,8,32") from None
    if not levels or any(c < 1 for c in levels):
        raise typer.BadParameter("each concurrency level is 1 or more")
    return levels


class RichReporter(Reporter):
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.setup_task: TaskID | None = None
        self.level_task: TaskID | None = None
        self.status = progress.add_task("starting", total=None, rate="")

    def step(self, text: str) -> None:
        self.progress.update(self.status, description=text)
        self.progress.console.print(f"[dim]· {text}[/]")
        if self.setup_task is not None:
            self.progress.remove_task(self.setup_task)
            self.setup_task = None

    def setup_progress(self, done: int, total: int) -> None:
        if self.setup_task is None:
            self.setup_task = self.progress.add_task("  set-up", total=total, rate="")
        self.progress.update(self.setup_task, completed=done, total=total)

    def level_start(self, database: str, concurrency: int, total_s: float) -> None:
        if self.setup_task is not None:
            self.progress.remove_task(self.setup_task)
            self.setup_task = None
        self.progress.update(self.status, description=f"{database}: measuring")
        self.level_task = self.progress.add_task(
            f"  {database} × {concurrency} warm-up", total=total_s, rate="")
        self._label = f"  {database} × {concurrency}"
        self._measure_began: float | None = None

    def level_tick(self, elapsed_s: float, measuring: bool, payments: int) -> None:
        if self.level_task is None:
            return
        rate = ""
        if measuring:
            if self._measure_began is None:
                self._measure_began = elapsed_s
            window = elapsed_s - self._measure_began
            rate = f"{payments / window:,.0f} payments/s" if window > 0.2 else ""
        phase = "measuring" if measuring else "warm-up"
        self.progress.update(self.level_task, completed=elapsed_s,
                             description=f"{self._label} {phase}", rate=rate)

    def level_end(self, record: lb.LevelRecord) -> None:
        if self.level_task is not None:
            self.progress.remove_task(self.level_task)
            self.level_task = None
        fail = f", [red]{record.failures} failures[/]" if record.failures else ""
        self.progress.console.print(
            f"  {record.database} × {record.concurrency}: "
            f"[bold]{record.payments_per_s:,.0f}[/] payments/s, avg batch {record.avg_batch}, "
            f"p99 {record.p99_ms} ms{fail}")


def print_report(report: lb.Report) -> None:
    info = Table(title="machine", show_header=False)
    info.add_column("")
    info.add_column("")
    for k, v in machine.summary(report.machine):
        info.add_row(k, v)
    console.print(info)
    t = Table(title=f"ledger: durably committed payments ({report.seconds:g} s per level, "
                    f"after {report.warmup:g} s warm-up)")
    for col in ("database", "concurrency", "payments/s", "transfers/s", "avg batch", "p50 ms",
                "p99 ms", "failures", "× pgbench best"):
        t.add_column(col, justify="left" if col == "database" else "right")
    for r in report.records:
        ratio = (f"{r.ratio_to_pgbench_best:.2f}×" if r.ratio_to_pgbench_best is not None
                 else "–")
        t.add_row(r.database, str(r.concurrency), f"{r.payments_per_s:,.0f}",
                  f"{r.transfers_per_s:,.0f}", f"{r.avg_batch:.1f}", f"{r.p50_ms:.1f}",
                  f"{r.p99_ms:.1f}", str(r.failures) if not r.failures
                  else f"[red]{r.failures}[/]", ratio)
    console.print(t)
    if report.pgbench is not None:
        p = Table(title=f"pgbench TPC-B-like, scale {report.pgbench.scale}, same server")
        for col in ("clients", "threads", "seconds", "TPS", "latency avg ms"):
            p.add_column(col, justify="right")
        for run in report.pgbench.runs:
            p.add_row(str(run.clients), str(run.threads), str(run.seconds), f"{run.tps:,.0f}",
                      f"{run.latency_avg_ms:.1f}" if run.latency_avg_ms is not None else "–")
        console.print(p)
        console.print(f"pgbench best: [bold]{report.pgbench.best_tps:,.0f}[/] TPS")
    for run_ in report.runs:
        if not run_.consistent:
            console.print(f"[red bold]{run_.database}: fee account credits "
                          f"{run_.fee_account_credits} != committed payments "
                          f"{run_.committed_payments}[/]")


@bench_app.command("ledger")
def ledger_cmd(
    db: str = typer.Option("sqlite,postgresql", "--db",
                           help="comma-separated: sqlite, postgresql"),
    seconds: float = typer.Option(10.0, "--seconds", min=0.5,
                                  help="measured seconds per concurrency level"),
    concurrency: str = typer.Option(DEFAULT_CONCURRENCY, "--concurrency",
                                    help="comma-separated numbers of concurrent submitters"),
    warmup: float = typer.Option(2.0, "--warmup", min=0.0,
                                 help="unmeasured seconds before each level"),
    wallets: int = typer.Option(10_000, "--wallets", min=2, help="funded wallets to pay between"),
    pgbench: bool = typer.Option(True, "--pgbench/--no-pgbench",
                                 help="run pgbench on the PostgreSQL server as the baseline"),
    out: Path = typer.Option(Path("bench/results/ledger.json"), "--out",
                             help="where to write the JSON results"),
    docs: bool = typer.Option(True, "--docs/--no-docs",
                              help="regenerate the results section of --docs-file"),
    docs_file: Path = typer.Option(Path("docs/benchmarks.md"), "--docs-file"),
) -> None:
    """Durably committed payments per second through the ledger, with pgbench as baseline."""
    from paycell.bench import ledger as lb

    databases = _split(db)
    bad = [d for d in databases if d not in DATABASES]
    if not databases or bad:
        raise typer.BadParameter(f"--db takes {', '.join(DATABASES)}; got {db!r}")
    levels = _levels(concurrency)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[rate]}"), console=console,
                  transient=True) as progress:
        report = lb.run(databases, concurrency=levels, seconds=seconds, warmup=warmup,
                        wallets=wallets, pgbench=pgbench, out=out,
                        docs=docs_file if docs else None, reporter=RichReporter(progress))
    print_report(report)
    console.print(f"results: {out}" + (f", {docs_file}" if docs else ""))
    failures = sum(r.failures for r in report.records)
    if failures or not all(run.consistent for run in report.runs):
        console.print(f"[red bold]{failures} failed payments[/]" if failures
                      else "[red bold]inconsistent ledger[/]")
        raise typer.Exit(1)


def _databases(db: str, option: str = "--db") -> list[str]:
    databases = _split(db)
    bad = [d for d in databases if d not in DATABASES]
    if not databases or bad:
        raise typer.BadParameter(f"{option} takes {', '.join(DATABASES)}; got {db!r}")
    return databases


@bench_app.command("clearing")
def clearing_cmd(
    db: str = typer.Option("sqlite,postgresql", "--db", help="comma-separated: sqlite, postgresql"),
    rows: int = typer.Option(1_000_000, "--rows", min=1, help="transactions in the business day"),
    out: Path = typer.Option(Path("bench/results/clearing.json"), "--out"),
) -> None:
    """Clearing one business day of --rows transactions: seconds and peak memory."""
    from paycell.bench import clearing

    clearing.main(_databases(db), rows=rows, out=out, console=console)


@bench_app.command("recon")
def recon_cmd(
    db: str = typer.Option("sqlite,postgresql", "--db", help="comma-separated: sqlite, postgresql"),
    rows: int = typer.Option(1_000_000, "--rows", min=1, help="lines in the statement file"),
    out: Path = typer.Option(Path("bench/results/recon.json"), "--out"),
) -> None:
    """Reconciling a statement file of --rows lines: seconds and peak memory."""
    from paycell.bench import recon

    recon.main(_databases(db), rows=rows, out=out, console=console)


def _http_progress(progress: Progress) -> hb.Progress:
    from paycell.bench import http as hb

    class RichHttpProgress(hb.Progress):
        def __init__(self) -> None:
            self.status = progress.add_task("starting", total=None, rate="")
            self.task: TaskID | None = None
            self._began: float | None = None

        def _drop(self) -> None:
            if self.task is not None:
                progress.remove_task(self.task)
                self.task = None

        def step(self, text: str) -> None:
            self._drop()
            progress.update(self.status, description=text)
            progress.console.print(f"[dim]· {text}[/]")

        def setup_progress(self, done: int, total: int) -> None:
            if self.task is None:
                self.task = progress.add_task("  set-up", total=total, rate="")
            progress.update(self.task, completed=done, total=total)

        def load_tick(self, database: str, elapsed_s: float, total_s: float, measuring: bool,
                      payments: int) -> None:
            if self.task is None:
                self.task = progress.add_task(f"  {database} warm-up", total=total_s, rate="")
                self._began = None
            rate = ""
            if measuring:
                self._began = elapsed_s if self._began is None else self._began
                window = elapsed_s - self._began
                rate = f"{payments / window:,.0f} payments/s" if window > 0.4 else ""
            progress.update(self.task, completed=elapsed_s, rate=rate,
                            description=f"  {database} {'measuring' if measuring else 'warm-up'}")

        def record(self, r: hb.Record) -> None:
            self._drop()
            fail = f", [red]{r.failures} failures[/]" if r.failures else ""
            progress.console.print(
                f"  {r.label}: [bold]{r.payments_per_s:,.0f}[/] payments/s, "
                f"p99 {r.p99_ms:,.1f} ms, server RSS {r.server_rss_peak_mb:,.0f} MB{fail}")

    return RichHttpProgress()


def print_http_report(report: hb.Report) -> None:
    t = Table(title=f"HTTP API: payments over loopback ({report.seconds:g} s after "
                    f"{report.warmup:g} s warm-up)")
    for col in ("database", "flow", "done/s", "p50 ms", "p95 ms", "p99 ms", "success", "errors"):
        t.add_column(col, justify="left" if col in ("database", "flow", "errors") else "right")
    for r in report.records:
        rows = [("all", {"per_s": r.payments_per_s, "p50_ms": r.p50_ms, "p95_ms": r.p95_ms,
                         "p99_ms": r.p99_ms, "success_rate": r.success_rate,
                         "errors": r.errors}), *r.flows.items()]
        for name, f in rows:
            ok = f["success_rate"]
            errors = ", ".join(f"{k} × {v}" for k, v in f["errors"].items())
            t.add_row(r.label, name, f"{f['per_s']:,.0f}", f"{f['p50_ms']:.1f}",
                      f"{f['p95_ms']:.1f}", f"{f['p99_ms']:.1f}",
                      "–" if ok is None else f"{ok * 100:.2f}%", errors[:60] or "–")
    console.print(t)
    for r in report.records:
        cores = f"server {r.server_cpu_cores:.2f}"
        if r.postgres_cpu_cores is not None:
            cores += f", PostgreSQL {r.postgres_cpu_cores:.2f}"
        if r.loadgen_cpu_cores is not None:
            cores += f", load generator {r.loadgen_cpu_cores:.2f}"
        load = (f"{r.users} users" if r.offered_per_s is None else
                f"{r.offered_per_s:,.0f}/s offered to {r.users} users, {r.dropped:,} dropped "
                f"in the window ({r.dropped_total:,} with the warm-up)")
        console.print(f"{r.label}: {r.workers} API workers, {load}; server RSS "
                      f"peak {r.server_rss_peak_mb:,.0f} MB; CPU cores used: {cores}; "
                      f"target {'[green]met[/]' if r.target_met else '[yellow]not met[/]'}")


@bench_app.command("http")
def http_cmd(
    db: str = typer.Option("sqlite,postgresql", "--db", help="comma-separated: sqlite, postgresql"),
    seconds: float = typer.Option(10.0, "--seconds", min=0.5, help="measured seconds"),
    warmup: float = typer.Option(3.0, "--warmup", min=0.0, help="unmeasured seconds first"),
    users: int = typer.Option(64, "--users", min=1, help="concurrent virtual users"),
    workers: int = typer.Option(2, "--workers", min=1, help="API worker processes"),
    mix: str = typer.Option("p2p=3,remote=2,nfc=5", "--mix",
                            help="flow weights: p2p, remote (create + confirm), nfc"),
    out: Path = typer.Option(Path("bench/results/http.json"), "--out"),
    docs: bool = typer.Option(True, "--docs/--no-docs",
                              help="regenerate the HTTP section of --docs-file"),
    docs_file: Path = typer.Option(Path("docs/benchmarks.md"), "--docs-file"),
    rate: float = typer.Option(1000.0, "--rate", min=0.0,
                               help="then an open loop: payments due per second (0: none)"),
    rate_users: int = typer.Option(256, "--rate-users", min=2,
                                   help="users the open loop draws on"),
    rate_db: str = typer.Option("postgresql", "--rate-db",
                                help="comma-separated: the databases given the open loop"),
) -> None:
    """Payments per second through the HTTP API (P2P, remote payments, NFC taps), with a
    load generator in its own process: a closed loop of --users (capacity), then an open
    loop at --rate (is that rate sustained, at what latency); exit 1 on any failed
    payment."""
    from paycell.bench import http as hb
    from paycell.bench.http_charts import chart_paths

    try:
        weights = hb.parse_mix(mix)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--mix") from None
    if weights.get("p2p") and users < 2:
        raise typer.BadParameter("p2p needs at least two users", param_hint="--users")
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[rate]}"), console=console,
                  transient=True) as progress:
        report = hb.run(_databases(db), seconds=seconds, warmup=warmup, users=users,
                        workers=workers, mix=weights, out=out,
                        docs=docs_file if docs else None, progress=_http_progress(progress),
                        rate=rate or None, rate_users=rate_users,
                        rate_databases=_databases(rate_db, "--rate-db"))
    print_http_report(report)
    if report.baseline:
        b = report.baseline
        console.print(f"baseline (bare FastAPI + uvicorn, same client): "
                      f"{b['requests_per_s']:,.0f} requests/s, p99 {b['p99_ms']:,.1f} ms")
    charts = ", ".join(str(p) for p in chart_paths(out))
    console.print(f"results: {out}" + (f", {docs_file}" if docs else "") + f"; charts: {charts}")
    failures = sum(r.failures for r in report.records)
    if failures:
        console.print(f"[red bold]{failures} failed payments[/]")
        raise typer.Exit(1)
