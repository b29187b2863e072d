"""The HTTP benchmark: payments per second through the whole API, as clients see them.

Per database (a temp SQLite file, or a throwaway durable PostgreSQL): migrate; open and fund
``users`` wallets, log each in, issue and activate an NFC card for each, onboard a few
merchants with a store, register and sign on one terminal per user, all through the
services (untimed; :mod:`paycell.bench.http_world`). Then start the API as ``paycell
serve`` would (``uvicorn paycell.api.app:create_app --factory --workers N``, background jobs
off: ``PAYCELL_RUN_WORKERS=0``; the flows driven here queue no job they need) and run
:mod:`paycell.bench.loadgen` in a process of its own beside it. While it runs, the RSS and
CPU time of the server's process tree (and PostgreSQL's) are read from /proc, and the API's
desks log their batches (:mod:`paycell.bench.http_desks` reads what they did in the window).

Two kinds of load. A *closed loop* of ``users`` (each starts its next payment when the last
ends) measures capacity; its latency is users / throughput by Little's law, so its p99 says
as much about the number of users as about the server. An *open loop* (``rate``: a payment
due every 1/rate s, k6's constant-arrival-rate, as Mojaloop's performance tests run) asks
what the target asks: is that rate sustained, and at what latency. Each runs on a fresh
database.

Steady state, as in production: on PostgreSQL the planner's statistics are refreshed
(``ANALYZE``) halfway through the warm-up. The tables the flows write (idempotency keys,
transfers, orders, authorisations) start empty, and a plan made for an empty table (a
sequential scan, kept by the connection's prepared statement) would be made again only
once autovacuum analyzes the table, about a minute later: never inside a run this short.
With stale statistics, the idempotency answers' UPDATE scanned the whole table (5,834 rows
for 8 keys, 2.4 ms) and was a fifth of PostgreSQL's time. Without a warm-up there is no
refresh.

Results: ``bench/results/http.json`` and the section of docs/benchmarks.md between the
``http-bench`` markers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from paycell.bench import http_desks, machine
from paycell.bench.http_world import seed, server_env

DATABASES = ("sqlite", "postgresql")
DEFAULT_MIX = {"p2p": 3.0, "remote": 2.0, "nfc": 5.0}
TARGET = {"payments_per_s": 1_000, "p99_ms": 100.0, "success_rate": 1.0}
DOCS_START = "<!-- http-bench:start -->"
DOCS_END = "<!-- http-bench:end -->"


def parse_mix(text: str) -> dict[str, float]:
    """``p2p=3,remote=2,nfc=5`` -> weights; unknown flows and negative weights refused."""
    from paycell.bench.loadgen import FLOWS

    mix: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in FLOWS:
            raise ValueError(f"unknown flow {name!r}; flows: {', '.join(FLOWS)}")
        try:
            mix[name] = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"weight of {name!r} is not a number: {weight!r}") from None
        if mix[name] < 0:
            raise ValueError(f"weight of {name!r} is negative")
    if not any(w > 0 for w in mix.values()):
        raise ValueError("the mix needs at least one flow with a positive weight")
    return mix


# -- /proc -----------------------------------------------------------------------------------
def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (now)."""
    kids, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def tree_usage(pid: int) -> tuple[int, float]:
    """(RSS bytes, CPU seconds user+system) summed over ``pid``'s process tree."""
    page, tick = os.sysconf("SC_PAGE_SIZE"), os.sysconf("SC_CLK_TCK")
    rss, cpu = 0, 0.0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the name: state(0) ppid(1) ... utime(11) stime(12) ... rss(21)
        cpu += (int(fields[11]) + int(fields[12])) / tick
        rss += int(fields[21]) * page
    return rss, cpu


# -- one database ----------------------------------------------------------------------------
def run_label(database: str, rate: float | None) -> str:
    """Names a run in tables and charts: the database, and for an open loop its rate."""
    return database if rate is None else f"{database} at {rate:,.0f}/s"


@dataclass(slots=True)
class Record:
    database: str
    workers: int
    users: int
    seconds: float
    payments: int
    payments_per_s: float
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    success_rate: float | None
    failures: int  # whole run, warm-up included
    server_rss_peak_mb: float
    server_rss_end_mb: float
    server_cpu_cores: float  # CPU seconds of the server's tree per second of load
    postgres_cpu_cores: float | None
    loadgen_cpu_cores: float | None
    setup_s: float
    retries: int = 0  # requests sent again after the connection dropped (same key)
    flows: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    # One request's latency (a remote payment is two), overall and per kind of request.
    request_latency: dict[str, dict[str, Any]] = field(default_factory=dict)
    analyze_s: float | None = None  # the warm-up's ANALYZE (PostgreSQL; None: none ran)
    timeline: list[dict[str, Any]] = field(default_factory=list)  # second by second
    offered_per_s: float | None = None  # open loop: flows due per second; None: closed loop
    dropped: int = 0  # open loop: flows due in the window while every user was busy (not sent)
    dropped_total: int = 0  # the same over the whole run, warm-up included
    # Per kind of batch, what the API's desks did in the window (bench/http_desks.py).
    desks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def load(self) -> str:
        if self.offered_per_s is None:
            return f"closed, {self.users} users"
        return f"open, {self.offered_per_s:,.0f}/s"

    @property
    def label(self) -> str:
        return run_label(self.database, self.offered_per_s)

    @property
    def target_met(self) -> bool:
        """Closed loop: at least the target's payments/s. Open loop: the target's rate
        offered and every payment due in the window done (the rate sustained; the warm-up is
        trimmed, as for the latency). Both: the p99 under the target's and no payment failed
        in the whole run."""
        if self.offered_per_s is None:
            throughput = self.payments_per_s >= TARGET["payments_per_s"]
        else:
            throughput = self.offered_per_s >= TARGET["payments_per_s"] and self.dropped == 0
        return (throughput and self.p99_ms < TARGET["p99_ms"]
                and self.success_rate == TARGET["success_rate"] and self.failures == 0)

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {**asdict(self), "load": self.load, "label": self.label,
                "target_met": self.target_met}


class Progress:
    """What the run tells its caller; the CLI draws it with rich."""

    def step(self, text: str) -> None:
        """A set-up step starts."""

    def setup_progress(self, done: int, total: int) -> None:
        """Users set up so far."""

    def load_tick(self, database: str, elapsed_s: float, total_s: float, measuring: bool,
                  payments: int) -> None:
        """About twice a second while the load runs."""

    def record(self, record: Record) -> None:
        """A database is done."""


def _postmaster_pid(server: Any) -> int | None:
    try:
        return int((Path(server.data_dir) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def refresh_statistics(url: str) -> float:
    """``ANALYZE`` the database, as autovacuum would once its tables have grown; returns
    the seconds it took. Invalidates the plans the connections prepared on empty tables."""
    import psycopg

    from paycell.devtools.pgserver import libpq_url

    began = time.perf_counter()
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("ANALYZE")
    return time.perf_counter() - began


def bench_database(database: str, url: str, *, users: int, workers: int, seconds: float,
                   warmup: float, mix: dict[str, float], work: Path, progress: Progress,
                   pg_pid: int | None = None, seed_no: int = 2026,
                   rate: float | None = None) -> Record:
    from paycell.devtools.chaos import ApiServer
    from paycell.devtools.pgserver import free_port

    progress.step(f"{database}: migrating, opening {users} wallets with cards and terminals")
    began = time.perf_counter()
    plan = seed(url, users, progress.setup_progress)
    setup_s = time.perf_counter() - began
    progress.step(f"{database}: starting the API ({workers} worker processes)")
    name = database if rate is None else f"{database}-open"
    label = run_label(database, rate)
    desk_logs = work / f"desks-{name}"
    shutil.rmtree(desk_logs, ignore_errors=True)
    desk_logs.mkdir(parents=True)
    server = ApiServer({**server_env(url), "PAYCELL_DESK_LOG_DIR": str(desk_logs)},
                       free_port(), workers, work / f"server-{name}.log")
    server.start()
    assert server.proc is not None
    server_pid = server.proc.pid
    plan_file, result_file = work / f"plan-{name}.json", work / f"result-{name}.json"
    plan_file.write_text(json.dumps({**plan, "base_url": server.url, "users": users,
                                     "seconds": seconds, "warmup": warmup, "mix": mix,
                                     "seed": seed_no, "rate": rate}))
    rss_peak = 0
    marks: dict[str, tuple[float, float, float]] = {}  # wall, server cpu, postgres cpu
    analyze_s: float | None = None  # how long the warm-up's ANALYZE took (PostgreSQL)
    try:
        load = f"{users} users" if rate is None else f"{rate:,.0f} payments/s offered"
        progress.step(f"{database}: {load} for {warmup:g} s warm-up + {seconds:g} s")
        gen = subprocess.Popen([sys.executable, "-m", "paycell.bench.loadgen", str(plan_file),
                                str(result_file)], stdout=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL)
        assert gen.stdout is not None
        for line in gen.stdout:
            try:
                tick = json.loads(line)
            except ValueError:
                continue
            rss, cpu = tree_usage(server_pid)
            rss_peak = max(rss_peak, rss)
            pg_cpu = tree_usage(pg_pid)[1] if pg_pid else 0.0
            if (pg_pid and analyze_s is None and not tick["measuring"]
                    and tick["elapsed"] >= warmup / 2):
                analyze_s = refresh_statistics(url)
            if tick["measuring"] and "start" not in marks:
                marks["start"] = (time.perf_counter(), cpu, pg_cpu)
            marks["last"] = (time.perf_counter(), cpu, pg_cpu)
            progress.load_tick(label, tick["elapsed"], warmup + seconds, tick["measuring"],
                               tick["payments"])
        if gen.wait() != 0:
            raise RuntimeError(f"the load generator exited with {gen.returncode}")
        rss_end, _ = tree_usage(server_pid)
    finally:
        server.kill()
    result = json.loads(result_file.read_text())
    ov = result["overall"]

    def cores(i: int) -> float:
        if "start" not in marks or marks["last"][0] <= marks["start"][0]:
            return 0.0
        return round((marks["last"][i] - marks["start"][i])
                     / (marks["last"][0] - marks["start"][0]), 2)

    record = Record(
        database=database, workers=workers, users=users, seconds=result["seconds"],
        payments=ov["completed"], payments_per_s=ov["per_s"],
        requests_per_s=result["requests_per_s"], p50_ms=ov["p50_ms"], p95_ms=ov["p95_ms"],
        p99_ms=ov["p99_ms"], success_rate=ov["success_rate"], failures=result["failed_total"],
        server_rss_peak_mb=round(max(rss_peak, rss_end) / 2**20, 1),
        server_rss_end_mb=round(rss_end / 2**20, 1), server_cpu_cores=cores(1),
        postgres_cpu_cores=cores(2) if pg_pid else None,
        loadgen_cpu_cores=result["loadgen"]["cpu_share_in_window"], setup_s=round(setup_s, 1),
        retries=result["retries"], flows=result["flows"], errors=result["errors_total"],
        request_latency=result["request_latency"],
        analyze_s=None if analyze_s is None else round(analyze_s, 3),
        timeline=result["timeline"], offered_per_s=rate,
        dropped=ov.get("dropped", 0), dropped_total=result.get("dropped_total", 0),
        desks=http_desks.read(desk_logs, marks["start"][0], marks["last"][0])
        if "start" in marks else {})
    progress.record(record)
    return record


# -- the whole run ---------------------------------------------------------------------------
@dataclass(slots=True)
class Report:
    generated_at: str
    machine: dict[str, Any]
    seconds: float
    warmup: float
    mix: dict[str, float]
    records: list[Record]
    baseline: dict[str, Any] | None = None  # the bare stack (paycell.bench.http_baseline)

    def to_json(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at, "machine": self.machine,
            "method": {
                "load": {
                    "closed": "each virtual user runs one flow at a time, then the next; "
                              "a flow counts when it ends in the window",
                    "open": "a flow is due every 1/rate s (k6's constant-arrival-rate) and "
                            "starts with the user idle longest, or is dropped if none is; "
                            "a flow counts when it is due in the window, its latency from "
                            "then"},
                "flows": {"p2p": "POST /v1/wallet/transfers (1 request)",
                          "remote": "merchant POST /v1/payments + payer confirm (2 requests)",
                          "nfc": "POST /v1/terminal/authorisations with a card's ARQC"},
                "mix": self.mix, "warmup_s": self.warmup, "seconds": self.seconds,
                "target": TARGET,
            },
            "baseline": self.baseline,
            "records": [r.to_json() for r in self.records],
        }


def measure_baseline(*, users: int, workers: int, seconds: float, warmup: float, work: Path,
                     progress: Progress) -> dict[str, Any]:
    """Requests/s of FastAPI + uvicorn with nothing behind them, same workers, same client
    (see :mod:`paycell.bench.http_baseline`)."""
    from paycell.devtools.chaos import ApiServer
    from paycell.devtools.pgserver import free_port

    progress.step(f"baseline: the bare stack, {workers} workers, {users} connections")
    server = ApiServer(dict(os.environ), free_port(), workers, work / "server-baseline.log",
                       app="paycell.bench.http_baseline:app", factory=False)
    server.start()
    try:
        out = subprocess.run(
            [sys.executable, "-m", "paycell.bench.http_baseline", server.url, str(users),
             str(seconds), str(warmup)], capture_output=True, text=True, check=True,
            stdin=subprocess.DEVNULL)
    finally:
        server.kill()
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result |= {"workers": workers, "users": users}
    return result


def run(databases: Sequence[str] = DATABASES, *, seconds: float = 10.0, warmup: float = 3.0,
        users: int = 64, workers: int = 2, mix: dict[str, float] | None = None,
        out: Path | None = None, docs: Path | None = None, progress: Progress | None = None,
        workdir: Path | None = None, rate: float | None = None, rate_users: int = 256,
        rate_databases: Sequence[str] = ("postgresql",)) -> Report:
    """Benchmark each database with a closed loop of ``users``; then, with ``rate``, each
    of ``rate_databases`` again with an open loop at that rate (on a fresh database, with
    ``rate_users`` users to draw on). Write the JSON (``out``) and the docs section
    (``docs``)."""
    unknown = set(databases) - set(DATABASES)
    if unknown:
        raise ValueError(f"unknown database(s) {sorted(unknown)}; choose from {DATABASES}")
    mix = dict(mix or DEFAULT_MIX)
    if mix.get("p2p") and users < 2:
        raise ValueError("p2p needs at least two users")
    rep = progress or Progress()
    generated_at = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="paycell-http-bench-")) if workdir is None else workdir
    server = None
    records: list[Record] = []
    try:
        pg_version = None
        if "postgresql" in databases:
            from paycell.bench.pgbench import server_version
            from paycell.devtools.pgserver import ThrowawayPostgres

            rep.step("starting PostgreSQL (durable)")
            server = ThrowawayPostgres(durable=True).start()
            pg_version = server_version(server)
        info = machine.describe(postgres_version=pg_version,
                                temp_dir=tempfile.gettempdir() if own else work)
        baseline = measure_baseline(users=users, workers=workers, seconds=seconds,
                                    warmup=warmup, work=work, progress=rep)
        runs: list[tuple[str, float | None]] = [(db, None) for db in databases]
        if rate:
            runs += [(db, rate) for db in databases if db in rate_databases]
        for db, db_rate in runs:
            if db == "sqlite":
                db_file = work / ("http-bench.db" if db_rate is None else "http-bench-open.db")
                if db_file.exists():
                    raise FileExistsError(f"{db_file} exists: the benchmark needs a fresh one")
                url, pg_pid = f"sqlite:///{db_file}", None
            else:
                assert server is not None
                server.drop_database("http_bench")
                url, pg_pid = server.create_database("http_bench"), _postmaster_pid(server)
            records.append(bench_database(
                db, url, users=users if db_rate is None else rate_users, workers=workers,
                seconds=seconds, warmup=warmup, mix=mix, work=work, progress=rep,
                pg_pid=pg_pid, rate=db_rate))
    finally:
        if server is not None:
            server.stop()
        if own:
            shutil.rmtree(work, ignore_errors=True)
    report = Report(generated_at=generated_at, machine=info, seconds=seconds, warmup=warmup,
                    mix=mix, records=records, baseline=baseline)
    charts: list[Path] = []
    if out is not None:
        from paycell.bench.http_charts import write_charts

        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report.to_json(), indent=2) + "\n")
        charts = write_charts(report, out)
    if docs is not None:
        from paycell.bench.docs import link_from, update_docs
        from paycell.bench.http_docs import HEADING, render_markdown

        images = [link_from(docs, c) for c in charts]
        update_docs(docs, render_markdown(report, images), start=DOCS_START, end=DOCS_END,
                    heading=HEADING)
    return report
