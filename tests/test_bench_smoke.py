"""Smoke test of ``paycell bench ledger``: SQLite only, tiny and short, no timing assertions."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from paycell.bench import docs as bench_docs
from paycell.bench import ledger as lb
from paycell.bench.ledger_charts import throughput_chart
from paycell.bench.pgbench import parse_output

SVG = "{http://www.w3.org/2000/svg}"
RECORD_KEYS = {
    "database", "concurrency", "seconds", "payments", "payments_per_s", "transfers_per_s",
    "avg_batch", "p50_ms", "p95_ms", "p99_ms", "failures", "ratio_to_pgbench_best",
}


@pytest.mark.sqlite_only
def test_ledger_bench_on_sqlite(tmp_path: Path) -> None:
    out = tmp_path / "results" / "ledger.json"
    docs = tmp_path / "benchmarks.md"
    start, end = bench_docs.DOCS_START, bench_docs.DOCS_END
    docs.write_text(f"# intro kept\n\n{start}\nold figures\n{end}\n\ntail kept\n")
    report = lb.run(["sqlite"], concurrency=[1, 4], seconds=1, warmup=0.2, wallets=200,
                    pgbench=False, out=out, docs=docs, workdir=tmp_path)

    data = json.loads(out.read_text())
    assert set(data) >= {"generated_at", "machine", "pgbench", "records"}
    assert data["pgbench"] is None
    assert data["machine"]["cpu_count"] and data["machine"]["sqlite"]
    assert [(r["database"], r["concurrency"]) for r in data["records"]] == [
        ("sqlite", 1), ("sqlite", 4)]
    for r in data["records"]:
        assert set(r) >= RECORD_KEYS
        assert r["failures"] == 0, r["errors"]
        assert r["payments"] > 0
        assert r["transfers"] == 2 * r["payments"]
        assert 0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"]
        assert r["avg_batch"] >= 2  # a payment's two transfers always commit together
        assert r["ratio_to_pgbench_best"] is None
    sqlite = data["databases"]["sqlite"]
    assert sqlite["settings"] == {"journal_mode": "wal", "synchronous": "FULL"}
    assert sqlite["consistent"] and sqlite["fee_account_credits"] == sqlite["committed_payments"]
    assert all(run.consistent for run in report.runs)

    text = docs.read_text()
    assert text.startswith("# intro kept") and text.rstrip().endswith("tail kept")
    assert "old figures" not in text
    assert text.count(bench_docs.DOCS_START) == 1 and "| sqlite | 4 |" in text

    # the chart beside the JSON, one position per level, linked from the docs
    root = ET.fromstring((tmp_path / "results" / "ledger.svg").read_text())
    [line] = root.findall(f"{SVG}polyline")  # no pgbench: no target lines
    assert len((line.get("points") or "").split()) == 2
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "1" in labels and "4" in labels and "concurrent submitters" in labels
    assert "![ledger throughput](results/ledger.svg)" in text


def test_ledger_chart_has_the_targets() -> None:
    """With pgbench's best, the chart draws the SQLite (1x) and PostgreSQL (3x) targets."""
    from paycell.bench.pgbench import PgbenchResult, PgbenchRun

    rec = [lb.LevelRecord("postgresql", c, 10, 100 * c, 10.0 * c, 20.0 * c, 2.0, 1, 2, 3, 0)
           for c in (1, 32, 1024)]
    run = lb.DatabaseRun("postgresql", rec, {}, 10, 1.0, 0, 0)
    pgb = PgbenchResult(10, [PgbenchRun(8, 2, 10, 3000.0, 2.0, 30000, 0)])
    report = lb.Report("now", {}, pgb, [run], 10, 2)
    chart = throughput_chart(report)
    assert [s.name for s in chart.series] == [
        "postgresql", "pgbench best", "3 x pgbench best"]
    assert [y for _, y in chart.series[2].points] == [9000.0, 9000.0]
    assert [text for _, text in chart.x_labels] == ["1", "32", "1,024"]


def test_docs_created_with_intro(tmp_path: Path) -> None:
    docs = tmp_path / "docs" / "benchmarks.md"
    bench_docs.update_docs(docs, "first")
    bench_docs.update_docs(docs, "second")
    text = docs.read_text()
    assert text.startswith("# Benchmarks") and "make bench" in text
    assert "second" in text and "first" not in text


def test_pgbench_output_parsed() -> None:
    sample = """\
transaction type: <builtin: TPC-B (sort of)>
scaling factor: 10
number of clients: 8
number of threads: 2
duration: 10 s
number of transactions actually processed: 23456
number of failed transactions: 0 (0.000%)
latency average = 3.411 ms
initial connection time = 12.345 ms
tps = 2345.678901 (without initial connection time)
"""
    got = parse_output(sample)
    assert got == {"tps": 2345.678901, "latency_avg_ms": 3.411, "transactions": 23456,
                   "failed": 0}


def test_percentile() -> None:
    values = [float(x) for x in range(1, 101)]
    assert lb.percentile(values, 50) == 50
    assert lb.percentile(values, 99) == 99
    assert lb.percentile([], 99) == 0
