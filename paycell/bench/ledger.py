"""The ledger benchmark: durably committed payments per second through paycell's ledger.

A *payment* is one submission of two linked transfers, wallet A -> wallet B (1 to 500 fen)
and wallet A -> the fee account (1 fen): every payment also credits the one shared fee
account, the hot spot. ``C`` submitters (asyncio tasks in one event loop, like request
handlers of an HTTP server) each post one payment at a time through
:class:`paycell.ledger.batcher.Batcher` and wait for its commit before sending the next;
group commit happens inside paycell. Commits are durable: SQLite in WAL mode with
``synchronous=FULL`` (as :mod:`paycell.db` configures it), PostgreSQL with ``fsync`` and
``synchronous_commit`` on.

Per concurrency level: a warm-up (not counted), then a measured window in which completed
payments, failures, latencies and the batcher's batch sizes are counted. The set-up
(migrations, 10,000 funded wallets) is not timed and writes with relaxed durability.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

from sqlalchemy import Engine, event, text

from paycell import migrate
from paycell.bench import Reporter, machine
from paycell.bench.docs import link_from, render_markdown, update_docs
from paycell.bench.ledger_charts import throughput_chart
from paycell.bench.pgbench import PgbenchResult, run_pgbench, server_version
from paycell.bench.svgchart import line_chart
from paycell.db import is_sqlite, make_engine
from paycell.ledger import chart
from paycell.ledger.batcher import Batcher
from paycell.ledger.model import TransferFlags, TransferRequest, TransferResult
from paycell.ledger.store import Ledger

DATABASES = ("sqlite", "postgresql")
DEFAULT_CONCURRENCY = (1, 8, 32, 128, 512, 1024)
DEFAULT_SECONDS = 10.0
DEFAULT_WARMUP = 2.0
DEFAULT_WALLETS = 10_000
WALLET_FUNDS = 10_000_000  # fen per wallet: far more than any run can spend
MAX_AMOUNT = 500
FEE = 1
FUND_BATCH = 2_000
# Transfer codes of the benchmark's own traffic (the chart leaves transfer codes to callers).
CODE_FUNDING = 9001
CODE_PAYMENT = 9002
CODE_FEE = 9003


@dataclass(slots=True)
class LevelRecord:
    database: str
    concurrency: int
    seconds: float  # the measured window, as it actually lasted
    payments: int  # committed in the window
    payments_per_s: float
    transfers_per_s: float
    avg_batch: float  # transfers per database transaction of the batcher
    p50_ms: float
    p95_ms: float
    p99_ms: float
    failures: int  # refused or errored payments at this level, warm-up included
    ratio_to_pgbench_best: float | None = None
    transfers: int = 0
    batches: int = 0
    retries: int = 0  # the ledger's internal retries (lock conflicts) in the window
    errors: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class DatabaseRun:
    database: str
    records: list[LevelRecord]
    settings: dict[str, str]
    wallets: int
    setup_s: float
    committed_payments: int  # all levels, warm-ups included
    fee_account_credits: int  # must equal committed_payments * FEE

    @property
    def consistent(self) -> bool:
        return self.fee_account_credits == self.committed_payments * FEE

    def to_json(self) -> dict[str, Any]:
        return {
            "settings": self.settings, "wallets": self.wallets,
            "setup_s": round(self.setup_s, 2),
            "committed_payments": self.committed_payments,
            "fee_account_credits": self.fee_account_credits, "consistent": self.consistent,
        }


@dataclass(slots=True)
class Fixture:
    wallet_ids: list[int]
    fee_id: int
    source_id: int


# -- set-up ------------------------------------------------------------------------------


def _setup_engine(url: str) -> Engine:
    """An engine with relaxed durability for the (untimed) set-up only."""
    if url.startswith("sqlite"):
        engine = make_engine(url)

        @event.listens_for(engine, "connect")
        def _relax(dbapi_conn: Any, _record: Any) -> None:  # runs after paycell's PRAGMAs
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA synchronous=OFF")
            cur.close()

        return engine
    return make_engine(url, connect_args={"options": "-c synchronous_commit=off"})


def set_up(url: str, wallets: int, reporter: Reporter | None = None) -> Fixture:
    """Migrate, open ``wallets`` funded wallets, a funding source and the fee account."""
    rep = reporter or Reporter()
    rep.step("migrating")
    migrate.upgrade(url)
    engine = _setup_engine(url)
    try:
        ledger = Ledger(engine)
        source = chart.system_account(ledger, chart.Code.BANK_CLEARING, key="bench")
        fee = chart.system_account(ledger, chart.Code.REVENUE_FEES)
        rep.step(f"opening {wallets:,} wallets")
        ids: list[int] = []
        for i in range(wallets):
            ids.append(chart.open_account(ledger, f"bench:wallet:{i:06d}", chart.Code.WALLET).id)
            if i % 250 == 0:
                rep.setup_progress(i, wallets)
        rep.setup_progress(wallets, wallets)
        rep.step(f"funding {wallets:,} wallets")
        for start in range(0, wallets, FUND_BATCH):
            part = ids[start : start + FUND_BATCH]
            results = ledger.post([
                TransferRequest(id=f"bench:fund:{wid}", debit_account_id=source.id,
                                credit_account_id=wid, amount=WALLET_FUNDS, code=CODE_FUNDING)
                for wid in part])
            bad = [r for r in results if not r.ok]
            if bad:
                raise RuntimeError(f"funding failed: {bad[0].error!r}")
            rep.setup_progress(start + len(part), wallets)
        _flush(engine)
        return Fixture(wallet_ids=ids, fee_id=fee.id, source_id=source.id)
    finally:
        engine.dispose()


def _flush(engine: Engine) -> None:
    """Put the set-up on disk now, not during a measured window."""
    if is_sqlite(engine):
        # Outside any transaction (paycell's engine would open one with BEGIN IMMEDIATE).
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cur.close()
        finally:
            raw.close()
        return
    with engine.connect() as conn:
        conn.execute(text("CHECKPOINT"))
        conn.commit()


def durability_settings(engine: Engine) -> dict[str, str]:
    """The settings that make commits durable, as the measured engine sees them."""
    names = (("journal_mode", "synchronous") if is_sqlite(engine)
             else ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method"))
    out = {}
    with engine.connect() as conn:
        for name in names:
            stmt = f"PRAGMA {name}" if is_sqlite(engine) else f"SHOW {name}"
            value = str(conn.exec_driver_sql(stmt).scalar())
            if is_sqlite(engine) and name == "synchronous":
                value = {"0": "OFF", "1": "NORMAL", "2": "FULL", "3": "EXTRA"}.get(value, value)
            out[name] = value
    return out


# -- the measured part -------------------------------------------------------------------


@dataclass(slots=True)
class _Level:
    start: float = math.inf
    end: float = math.inf
    stop: bool = False
    latencies: list[float] = field(default_factory=list)
    committed: int = 0  # including warm-up and the tail after the window
    failures: int = 0
    errors: Counter[str] = field(default_factory=Counter)


def _error_code(results: Sequence[TransferResult]) -> str | None:
    for r in results:
        if not r.ok and r.error is not None and r.error.code != "linked_event_failed":
            return str(r.error.code)
    for r in results:
        if not r.ok:
            return str(r.error.code) if r.error is not None else "failed"
    return None


async def _submitter(
    st: _Level, batcher: Batcher, wallets: Sequence[int], fee_id: int, rng: random.Random,
) -> None:
    n = len(wallets)
    prefix = uuid4().hex[:12] + "."  # ids unique per run; a counter, not a syscall each
    serial = itertools.count()
    post = batcher.post_async
    clock = time.perf_counter
    while not st.stop:
        i = rng.randrange(n)
        j = rng.randrange(n - 1)
        if j >= i:
            j += 1
        payer = wallets[i]
        pid = f"{prefix}{next(serial)}"
        reqs = (
            TransferRequest(id=f"{pid}.pay", debit_account_id=payer, credit_account_id=wallets[j],
                            amount=rng.randint(1, MAX_AMOUNT), code=CODE_PAYMENT,
                            flags=TransferFlags.LINKED),
            TransferRequest(id=f"{pid}.fee", debit_account_id=payer, credit_account_id=fee_id,
                            amount=FEE, code=CODE_FEE),
        )
        t0 = clock()
        err: str | None
        try:
            err = _error_code(await post(reqs))
        except Exception as exc:  # a bug or a broken database: count it, keep going
            err = f"exception:{type(exc).__name__}"
        t1 = clock()
        if err is None:
            st.committed += 1
            if st.start <= t1 < st.end:
                st.latencies.append(t1 - t0)
        else:
            st.failures += 1
            st.errors[err] += 1


def _run_loop(main: Any) -> None:
    """Run the submitters on uvloop when it is installed, as ``paycell serve`` (uvicorn)
    runs request handlers; on the standard event loop otherwise."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(main)
        return
    uvloop.run(main)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def _run_level(
    database: str, batcher: Batcher, fx: Fixture, concurrency: int, *, warmup: float,
    seconds: float, rng: random.Random, reporter: Reporter,
) -> tuple[LevelRecord, int]:
    st = _Level()
    tasks = [asyncio.create_task(_submitter(st, batcher, fx.wallet_ids, fx.fee_id, rng))
             for _ in range(concurrency)]
    ledger_stats = batcher.ledger.stats
    began = time.perf_counter()
    try:
        while time.perf_counter() - began < warmup:
            reporter.level_tick(time.perf_counter() - began, False, 0)
            await asyncio.sleep(min(0.25, max(0.0, warmup - (time.perf_counter() - began))))
        b0, t0, r0 = batcher.batches, batcher.transfers, ledger_stats["retries"]
        st.start = time.perf_counter()
        while time.perf_counter() - st.start < seconds:
            reporter.level_tick(time.perf_counter() - began, True, len(st.latencies))
            await asyncio.sleep(min(0.25, max(0.0, seconds - (time.perf_counter() - st.start))))
        st.end = time.perf_counter()
        b1, t1, r1 = batcher.batches, batcher.transfers, ledger_stats["retries"]
    finally:
        st.stop = True
        await asyncio.gather(*tasks, return_exceptions=True)
    window = st.end - st.start
    lat = sorted(st.latencies)
    payments = len(lat)
    batches = b1 - b0
    record = LevelRecord(
        database=database, concurrency=concurrency, seconds=round(window, 3),
        payments=payments, payments_per_s=round(payments / window, 1),
        transfers_per_s=round(2 * payments / window, 1),
        avg_batch=round((t1 - t0) / batches, 1) if batches else 0.0,
        p50_ms=round(percentile(lat, 50) * 1000, 2), p95_ms=round(percentile(lat, 95) * 1000, 2),
        p99_ms=round(percentile(lat, 99) * 1000, 2), failures=st.failures,
        transfers=2 * payments, batches=batches, retries=r1 - r0, errors=dict(st.errors),
    )
    return record, st.committed


def bench_database(
    database: str,
    url: str,
    *,
    concurrency: Sequence[int] = DEFAULT_CONCURRENCY,
    seconds: float = DEFAULT_SECONDS,
    warmup: float = DEFAULT_WARMUP,
    wallets: int = DEFAULT_WALLETS,
    seed: int = 2026,
    reporter: Reporter | None = None,
) -> DatabaseRun:
    """Set up a fresh database at ``url`` and measure each concurrency level on it."""
    if wallets < 2:
        raise ValueError("a payment needs two distinct wallets")
    rep = reporter or Reporter()
    set_up_began = time.perf_counter()
    fx = set_up(url, wallets, rep)
    setup_s = time.perf_counter() - set_up_began
    engine = make_engine(url)
    try:
        settings = durability_settings(engine)
        ledger = Ledger(engine)
        batcher = Batcher(ledger)
        rng = random.Random(seed)
        records: list[LevelRecord] = []
        committed = 0

        async def levels() -> None:
            nonlocal committed
            for c in concurrency:
                rep.level_start(database, c, warmup + seconds)
                record, done = await _run_level(database, batcher, fx, c, warmup=warmup,
                                                seconds=seconds, rng=rng, reporter=rep)
                committed += done
                records.append(record)
                rep.level_end(record)

        try:
            _run_loop(levels())
        finally:
            batcher.close()
        fee_credits = ledger.account(fx.fee_id).credits_posted
    finally:
        engine.dispose()
    return DatabaseRun(database=database, records=records, settings=settings, wallets=wallets,
                       setup_s=setup_s, committed_payments=committed,
                       fee_account_credits=fee_credits)


# -- the whole run -----------------------------------------------------------------------


@dataclass(slots=True)
class Report:
    generated_at: str
    machine: dict[str, Any]
    pgbench: PgbenchResult | None
    runs: list[DatabaseRun]
    seconds: float
    warmup: float

    @property
    def records(self) -> list[LevelRecord]:
        return [r for run in self.runs for r in run.records]

    def to_json(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at,
            "machine": self.machine,
            "method": {
                "payment": "2 linked transfers: wallet->wallet (1..500 fen) + wallet->fee (1 fen)",
                "submitters": "asyncio tasks, one payment at a time each, through Batcher",
                "warmup_s": self.warmup, "seconds": self.seconds,
            },
            "pgbench": self.pgbench.to_json() if self.pgbench else None,
            "databases": {run.database: run.to_json() for run in self.runs},
            "records": [r.to_json() for r in self.records],
        }


def run(
    databases: Sequence[str] = DATABASES,
    *,
    concurrency: Sequence[int] = DEFAULT_CONCURRENCY,
    seconds: float = DEFAULT_SECONDS,
    warmup: float = DEFAULT_WARMUP,
    wallets: int = DEFAULT_WALLETS,
    pgbench: bool = True,
    out: Path | None = None,
    docs: Path | None = None,
    reporter: Reporter | None = None,
    workdir: Path | None = None,
) -> Report:
    """Benchmark each database (and pgbench on the PostgreSQL server); write JSON and docs.

    The SQLite database lives in ``workdir`` (default: a new temp dir, removed afterwards);
    PostgreSQL's throwaway cluster in the system temp dir.
    """
    unknown = set(databases) - set(DATABASES)
    if unknown:
        raise ValueError(f"unknown database(s) {sorted(unknown)}; choose from {DATABASES}")
    rep = reporter or Reporter()
    generated_at = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    own_workdir = workdir is None
    work = Path(tempfile.mkdtemp(prefix="paycell-bench-")) if workdir is None else workdir
    server = None
    try:
        pg_version = None
        if "postgresql" in databases or pgbench:
            from paycell.devtools.pgserver import ThrowawayPostgres

            rep.step("starting PostgreSQL (durable)")
            server = ThrowawayPostgres(durable=True).start()
            pg_version = server_version(server)
        info = machine.describe(postgres_version=pg_version,
                                temp_dir=tempfile.gettempdir() if own_workdir else work)
        pgb = None
        if pgbench and server is not None:
            pgb = run_pgbench(server, seconds=max(1, round(seconds)), on_step=rep.step)
        runs: list[DatabaseRun] = []
        for db in databases:
            if db == "sqlite":
                db_file = work / "ledger-bench.db"
                if db_file.exists():
                    raise FileExistsError(f"{db_file} exists: the benchmark needs a fresh one")
                url = f"sqlite:///{db_file}"
            else:
                assert server is not None
                server.drop_database("ledger_bench")
                url = server.create_database("ledger_bench")
            runs.append(bench_database(db, url, concurrency=concurrency, seconds=seconds,
                                       warmup=warmup, wallets=wallets, reporter=rep))
    finally:
        if server is not None:
            server.stop()
        if own_workdir:
            shutil.rmtree(work, ignore_errors=True)
    best = pgb.best_tps if pgb else None
    for r in (r for run_ in runs for r in run_.records):
        r.ratio_to_pgbench_best = round(r.payments_per_s / best, 3) if best else None
    report = Report(generated_at=generated_at, machine=info, pgbench=pgb, runs=runs,
                    seconds=seconds, warmup=warmup)
    chart_file: Path | None = None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report.to_json(), indent=2) + "\n")
        chart_file = out.with_name(f"{out.stem}.svg")
        chart_file.write_text(line_chart(throughput_chart(report)))
    if docs is not None:
        image = None if chart_file is None else link_from(docs, chart_file)
        update_docs(docs, render_markdown(report, image))
    return report
