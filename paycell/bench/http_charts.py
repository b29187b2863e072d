"""The HTTP benchmark's charts: payments per second through the run, and how long one
request takes (the share of requests answered within a time), as SVG files beside the JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from paycell.bench.svgchart import Chart, Series, line_chart

if TYPE_CHECKING:
    from paycell.bench.http import Report


def throughput_chart(report: Report) -> Chart:
    from paycell.bench.http import TARGET

    marks = [(report.warmup, "measuring starts")] if report.warmup > 0 else []
    if any(r.analyze_s is not None for r in report.records):
        marks.insert(0, (report.warmup / 2, "ANALYZE"))
    series = [Series(r.label, [(p["t"], p["payments_per_s"]) for p in r.timeline])
              for r in report.records]
    target = report.warmup + report.seconds
    series.append(Series(f"target {TARGET['payments_per_s']:,}/s",
                         [(0.0, TARGET["payments_per_s"]), (target, TARGET["payments_per_s"])],
                         colour="#bbbbbb"))
    return Chart("Payments per second, second by second", "seconds since the load started",
                 "payments per second", series, marks)


def latency_chart(report: Report) -> Chart:
    """Per run, all requests; for the last PostgreSQL run (the open loop, when there is
    one), each kind of request too."""
    from paycell.bench.http import TARGET

    series = [Series(f"{r.label}: all",
                     [(ms, q) for q, ms in r.request_latency["overall"]["cdf_ms"]])
              for r in report.records if r.request_latency.get("overall", {}).get("cdf_ms")]
    pg = [r for r in report.records if r.database == "postgresql"]
    if pg:
        for kind, lat in pg[-1].request_latency.items():
            if kind != "overall" and lat.get("cdf_ms"):
                series.append(Series(f"{pg[-1].label}: {kind}",
                                     [(ms, q) for q, ms in lat["cdf_ms"]]))
    return Chart("One request: share answered within a time", "milliseconds",
                 "percent of requests", series, [(TARGET["p99_ms"], "p99 target")], y_max=100)


CHARTS = ("throughput", "latency")


def chart_paths(out: Path) -> list[Path]:
    """Where the charts of a run whose JSON is ``out`` go: ``<stem>-<chart>.svg`` beside it."""
    return [out.with_name(f"{out.stem}-{name}.svg") for name in CHARTS]


def write_charts(report: Report, out: Path) -> list[Path]:
    """Draw the charts beside ``out``; returns their paths."""
    paths = chart_paths(out)
    for path, chart in zip(paths, (throughput_chart(report), latency_chart(report)),
                           strict=True):
        path.write_text(line_chart(chart))
    return paths
