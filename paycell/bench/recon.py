"""The recon benchmark (`paycell bench recon`, part of `make bench`).

Per database: seed ``rows`` confirmed card top-ups with one INSERT ... SELECT (seeded rows,
not posted through the top-up use case: the matching reads the tables, not the journal),
write a ``rows``-line GBK statement for them to a temp file (with a few discrepancies of
every class), then time ``reconcile_file`` (streamed import + set-based matching + ledger
posting) in a child process whose peak RSS is measured. Target: < 30 s, < 500 MB.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from paycell import migrate
from paycell.bench import database_urls
from paycell.db import make_engine
from paycell.reconciliation.formats import Header, OutLine, write
from paycell.settlement.calendar import window

DAY = date(2026, 1, 1)
TARGET_S, TARGET_MB = 30.0, 500.0
_SEED = {
    "sqlite": ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows) "
               "INSERT INTO topups (id, subscriber_id, source, partner, amount_fen, currency, "
               "held_in_suspense, state, created_at, updated_at) SELECT 'tu_b' || i, 1, "
               "'card', 'icbc', 100 + i % 9900, 'CNY', 0, 'confirmed', :t0 + i, :t0 + i FROM n"),
    "postgresql": ("INSERT INTO topups (id, subscriber_id, source, partner, amount_fen, "
                   "currency, held_in_suspense, state, created_at, updated_at) SELECT "
                   "'tu_b' || i, 1, 'card', 'icbc', 100 + i % 9900, 'CNY', false, 'confirmed', "
                   ":t0 + i, :t0 + i FROM generate_series(1, :rows) AS i"),
}


def _lines(rows: int) -> Iterator[OutLine]:
    day = DAY.isoformat()
    for i in range(1, rows + 1):
        if i % 100_000 == 1 and i > 1:
            continue  # missing_theirs
        amount = 100 + i % 9900 + (1 if i % 100_000 == 2 else 0)  # amount_mismatch
        yield OutLine(f"BK{i:09d}", day, "in", f"topup:tu_b{i}", amount, "工行 充值")
        if i % 100_000 == 3:
            yield OutLine(f"BK{i:09d}D", day, "in", f"topup:tu_b{i}", amount, "重复")
    yield OutLine("BK999999999", day, "in", "topup:tu_unknown", 1234, "未知")  # missing_ours


def _child(url: str, path: str) -> None:
    """Run in the child process: reconcile and print the summary as JSON."""
    from paycell.config import Settings
    from paycell.context import build_context

    engine = make_engine(url)
    ctx = build_context(engine, settings=Settings(_env_file=None, database_url=url,  # type: ignore[call-arg]
                                                  run_workers=False))
    from paycell.reconciliation import service

    started = time.perf_counter()
    s = service.reconcile_file(ctx, Path(path), source="bank")
    took = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": round(took, 2), "peak_rss_mb": round(peak, 1),
                      "counts": s.counts}))


def baseline(path: Path) -> float:
    """The floor of any importer in Python: decode the file (GBK) and split its CSV lines,
    nothing checked or stored (seconds)."""
    import csv

    t0 = time.perf_counter()
    with path.open(encoding="gb18030", newline="") as f:
        for _row in csv.reader(f):
            pass
    return round(time.perf_counter() - t0, 2)


def bench_database(db: str, url: str, rows: int, work: Path, console: Console) -> dict[str, Any]:
    console.print(f"[dim]· {db}: migrating and seeding {rows:,} top-ups[/]")
    migrate.upgrade(url)
    engine = make_engine(url)
    from paycell.config import Settings
    from paycell.context import build_context
    from paycell.subscribers.service import open_account

    ctx = build_context(engine, settings=Settings(_env_file=None, database_url=url,  # type: ignore[call-arg]
                                                  run_workers=False))
    payer = open_account(ctx, "+8613800138000", "730419")
    with engine.begin() as conn:
        conn.execute(text(_SEED[db].replace("SELECT 'tu_b' || i, 1,",
                                            f"SELECT 'tu_b' || i, {int(payer.id)},")),
                     {"rows": rows, "t0": window(DAY)[0]})
    engine.dispose()
    path = work / f"statement-{db}.csv"
    console.print(f"[dim]· {db}: writing a {rows:,}-line GBK statement[/]")
    write(path, Header("bank", "icbc", DAY.isoformat(), "CNY"), _lines(rows), encoding="gbk")
    console.print(f"[dim]· {db}: reconciling ({path.stat().st_size / 1e6:.0f} MB)[/]")
    done = subprocess.run([sys.executable, "-c", "import sys; from paycell.bench.recon "
                           "import _child; _child(sys.argv[1], sys.argv[2])", url, str(path)],
                          capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(database=db, rows=rows, file_mb=round(path.stat().st_size / 1e6, 1),
                  baseline_read_csv_seconds=baseline(path),
                  ok=result["seconds"] < TARGET_S and result["peak_rss_mb"] < TARGET_MB)
    return result


def main(databases: list[str], *, rows: int, out: Path, console: Console) -> None:
    """Measure on each database, print a table beside the baseline, write JSON to ``out``."""
    work = Path(tempfile.mkdtemp(prefix="paycell-recon-bench-"))
    results: list[dict[str, Any]] = []
    try:
        for db, url in database_urls(databases, "recon_bench", work):
            results.append(bench_database(db, url, rows, work, console))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = Table(title=f"reconciliation of a {rows:,}-line GBK statement")
    for col in ("database", "seconds", "target", "baseline: read CSV s", "peak RSS MB", "target",
                "classes"):
        table.add_column(col)
    for r in results:
        table.add_row(r["database"], f"{r['seconds']:.1f}", f"< {TARGET_S:.0f}",
                      f"{r['baseline_read_csv_seconds']:.1f}",
                      f"{r['peak_rss_mb']:.0f}", f"< {TARGET_MB:.0f}",
                      ", ".join(f"{k} {v:,}" for k, v in sorted(r["counts"].items())))
    console.print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "results": results}, indent=2) + "\n")
    console.print(f"written: {out}")
