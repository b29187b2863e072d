"""The clearing benchmark (`paycell bench clearing`, part of `make bench`).

Seeds one business day of ``rows`` sales (and 2 % refunds) over ``MERCHANTS`` merchants
straight into ``ledger_transfers`` with one ``INSERT ... SELECT`` (the rows are seeded, not
posted: no hash chain, balances set in bulk), gives the merchants a mix of commission rules,
then times ``clear_date`` in a child process and reads its peak RSS (``ru_maxrss``). Target:
under 30 s and 500 MB on each database. Prints a table, writes JSON.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, text

from paycell import migrate
from paycell.bench import database_urls
from paycell.db import make_engine

MERCHANTS = 3_000
DAY = date(2026, 11, 25)
TARGET_S, TARGET_MB = 30.0, 500


def seed(engine: Engine, rows: int) -> None:
    """Merchants with payable accounts, their rules, and a day of transfers (bulk)."""
    from paycell.settlement.calendar import window

    start, end = window(DAY)
    span = end - start
    pg = engine.dialect.name == "postgresql"
    series = ("generate_series(CAST(1 AS BIGINT), :n) AS s(i)" if pg else
              "(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < :n) "
              "SELECT i FROM c) AS s")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO ledger_accounts (name, ledger, code, flags, debits_pending, "
            "debits_posted, credits_pending, credits_posted, timestamp) VALUES "
            "('bank_clearing:bench:CNY', 'CNY', 310, 0, 0, 0, 0, 0, :t)"), {"t": start})
        src = conn.execute(text("SELECT id FROM ledger_accounts WHERE name = "
                                "'bank_clearing:bench:CNY'")).scalar_one()
        conn.execute(text(
            "INSERT INTO ledger_accounts (name, ledger, code, flags, debits_pending, "
            "debits_posted, credits_pending, credits_posted, timestamp) "
            f"SELECT 'merchant_payable:bench' || i || '\\:CNY', 'CNY', 200, 1, 0, 0, 0, "
            f"1000000000000, :t FROM {series}"), {"n": MERCHANTS, "t": start})
        first = conn.execute(text("SELECT min(id) FROM ledger_accounts WHERE name LIKE "
                                  "'merchant_payable:bench%'")).scalar_one()
        conn.execute(text(
            "INSERT INTO merchants (name, company, category, state, contact_name, "
            "contact_phone, contact_email, bank_name, bank_account_holder, "
            "bank_account_sealed, bank_account_last4, payable_account_id, created_at, "
            "updated_at) SELECT 'Bench ' || i, 'Bench Co ' || i, 'retail', 'active', 'x', "
            "'000000', 'x@bench.example', 'ICBC', 'Bench', 'x', '0000', "
            f":first + i - 1, :t, :t FROM {series}"), {"n": MERCHANTS, "first": first,
                                                       "t": start})
        kinds = (("percentage", '{"bp": 60}'), ("fixed", '{"fen": 30}'),
                 ("tiered", '{"tiers": [{"bp": 60, "up_to_fen": 100000000}, '
                            '{"bp": 30, "up_to_fen": null}]}'))
        for k, (kind, params) in enumerate(kinds):  # the fourth quarter: none
            conn.execute(text(
                "INSERT INTO settlement_rules (merchant_id, effective_from, kind, params, "
                "proposed_by, approved_by, created_at) SELECT id, '2026-11-01', :kind, "
                ":params, 'bench', 'bench', :t FROM merchants "
                "WHERE name LIKE 'Bench %' AND id % 4 = :k"),
                {"t": start, "k": k, "kind": kind, "params": params})
        # sales: 98 % PURCHASE into a payable; refunds: every 50th row, payable -> source
        conn.execute(text(
            "INSERT INTO ledger_transfers (seq, id, debit_account_id, credit_account_id, "
            "amount, ledger, code, flags, pending_id, timeout, ref, timestamp, prev_hash, "
            "hash) SELECT 1000000000 + i, 'bench:' || i, "
            "CASE WHEN i % 50 = 0 THEN :first + (i % :m) ELSE :src END, "
            "CASE WHEN i % 50 = 0 THEN :src ELSE :first + (i % :m) END, "
            "100 + (i * 7919) % 20000, 'CNY', CASE WHEN i % 50 = 0 THEN 2003 ELSE 2001 END, "
            f"0, NULL, 0, NULL, :start + (i * :step) % :span, '', '' FROM {series}"),
            {"n": rows, "first": first, "m": MERCHANTS, "src": src, "start": start,
             "span": span, "step": 7_777_777})
    if pg:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("VACUUM ANALYZE ledger_transfers"))


def child(url: str) -> dict[str, Any]:
    """Runs in its own process: clear the day, report seconds and peak RSS."""
    from paycell.clock import ManualClock
    from paycell.config import Settings
    from paycell.context import build_context
    from paycell.settlement.calendar import CST
    from paycell.settlement.clearing import clear_date

    engine = make_engine(url)
    clock = ManualClock(datetime.combine(DAY + timedelta(days=1), datetime.min.time(), CST)
                        + timedelta(hours=2))
    work = tempfile.mkdtemp(prefix="paycell-clearing-")
    settings = Settings(database_url=url, run_workers=False, reports_dir=work)
    ctx = build_context(engine, settings=settings, clock=clock)
    try:
        t0 = time.perf_counter()
        res = clear_date(ctx, DAY, actor="bench")
        seconds = time.perf_counter() - t0
    finally:
        ctx.close()
        engine.dispose()
        shutil.rmtree(work, ignore_errors=True)
    return {"seconds": round(seconds, 2), "merchants": res.merchants,
            "gross_fen": res.gross_fen, "commission_fen": res.commission_fen,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def baseline(url: str) -> float:
    """The floor of any clearing: one bare GROUP BY over the day's transfers per account, in
    the same database (seconds). Clearing adds the rules, the postings and the items."""
    from paycell.settlement.calendar import window

    start, end = window(DAY)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            t0 = time.perf_counter()
            conn.execute(text(
                "SELECT credit_account_id, count(*), sum(amount) FROM ledger_transfers "
                "WHERE timestamp >= :a AND timestamp < :b GROUP BY credit_account_id"),
                {"a": start, "b": end}).fetchall()
            return round(time.perf_counter() - t0, 2)
    finally:
        engine.dispose()


def _measure(url: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "paycell.bench.clearing", url],
                         capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(databases: list[str], *, rows: int, out: Path, console: Console) -> None:
    """Measure on each database, print a table beside the baseline, write JSON to ``out``."""
    results: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="paycell-bench-clearing-"))
    try:
        for db, url in database_urls(databases, "clearing_bench", work):
            console.print(f"{db}: migrating and seeding {rows:,} transfers")
            migrate.upgrade(url)
            engine = make_engine(url)
            t0 = time.perf_counter()
            seed(engine, rows)
            engine.dispose()
            seeded = round(time.perf_counter() - t0, 1)
            console.print(f"{db}: seeded in {seeded} s; clearing")
            results[db] = {"rows": rows, "seed_seconds": seeded,
                           "baseline_group_by_seconds": baseline(url), **_measure(url)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = Table(title=f"clearing one business day of {rows:,} transactions")
    for col in ("database", "merchants", "seconds", "baseline: bare GROUP BY s", "peak RSS MB",
                "target"):
        table.add_column(col)
    for db, r in results.items():
        ok = r["seconds"] < TARGET_S and r["peak_rss_mb"] < TARGET_MB
        table.add_row(db, str(r["merchants"]), str(r["seconds"]),
                      str(r["baseline_group_by_seconds"]), str(r["peak_rss_mb"]),
                      f"< {TARGET_S:.0f} s, < {TARGET_MB} MB: {'ok' if ok else 'MISSED'}")
    console.print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "clearing", "rows": rows,
                               "merchants": MERCHANTS, "databases": results,
                               "target": {"seconds": TARGET_S, "rss_mb": TARGET_MB}},
                              indent=2) + "\n")


if __name__ == "__main__":
    print(json.dumps(child(sys.argv[1])))
