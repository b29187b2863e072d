"""The ledger benchmark's chart: committed payments per second at each number of
submitters, per database, beside pgbench's best (SQLite's target) and three times it
(PostgreSQL's), as SVG beside the JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paycell.bench.svgchart import Chart, Series

if TYPE_CHECKING:
    from paycell.bench.ledger import Report


def throughput_chart(report: Report) -> Chart:
    """Payments per second against the number of submitters (one position per level), per
    database, beside the targets: pgbench's best TPS (SQLite's), three times it
    (PostgreSQL's)."""
    levels = sorted({r.concurrency for r in report.records})
    at = {c: i + 1.0 for i, c in enumerate(levels)}
    series = [Series(run_.database, [(at[r.concurrency], r.payments_per_s)
                                     for r in run_.records]) for run_ in report.runs]
    best = report.pgbench.best_tps if report.pgbench else None
    if best and levels:
        ends = [(0.5, 0.0), (len(levels) + 0.5, 0.0)]
        for times, name in ((1, "pgbench best"), (3, "3 x pgbench best")):
            series.append(Series(name, [(x, best * times) for x, _ in ends],
                                 colour="#bbbbbb" if times == 1 else "#888888"))
    return Chart("Ledger: committed payments per second", "concurrent submitters",
                 "payments per second", series,
                 x_labels=[(at[c], f"{c:,}") for c in levels])
