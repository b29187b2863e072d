"""The HTTP benchmark's generated section of ``docs/benchmarks.md`` (between the
``http-bench`` markers), and the hand-written heading put before it the first time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from paycell.bench import machine

if TYPE_CHECKING:
    from paycell.bench.http import Record, Report

HEADING = """\
## The HTTP API: payments per second as clients see them

`paycell bench http` (part of `make bench`) drives the whole API over loopback; see
`paycell/bench/http.py` for the method.
"""


def _f(v: float | None, digits: int = 0) -> str:
    return "–" if v is None else f"{v:,.{digits}f}"


def _rate(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v * 100:.{digits}f}%"


def _load(r: Record) -> str:
    if r.offered_per_s is None:
        return f"closed: {r.users} users"
    return f"open: {r.offered_per_s:,.0f}/s offered ({r.users} users)"


def render_markdown(report: Report, images: Sequence[str] = ()) -> str:
    """The section; ``images`` are the charts' paths relative to the docs file."""
    from paycell.bench.http import TARGET

    lines = [f"### Latest run ({report.generated_at})", ""]
    lines += ["| machine | |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in machine.summary(report.machine)]
    mix = ", ".join(f"{k} {v:g}" for k, v in report.mix.items())
    lines += ["", f"Warm-up {report.warmup:g} s (not counted), then {report.seconds:g} s "
              f"measured; mix (weights): {mix}. A closed loop (a fixed number of users, each "
              "starting its next payment when the last ends) measures capacity; an open loop "
              "(payments due at a fixed rate, as Mojaloop's tests run) asks whether that rate "
              "is sustained, and at what latency.", ""]
    lines += ["| database | load | API workers | payments/s | requests/s | p50 ms | p95 ms | "
              "p99 ms | success | failures | server RSS peak MB | CPU cores: server / "
              "PostgreSQL / load generator |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
              "---: |"]
    for r in report.records:
        lines.append(
            f"| {r.database} | {_load(r)} | {r.workers} | {_f(r.payments_per_s)} | "
            f"{_f(r.requests_per_s)} | {_f(r.p50_ms, 1)} | {_f(r.p95_ms, 1)} | "
            f"{_f(r.p99_ms, 1)} | {_rate(r.success_rate)} | {r.failures} | "
            f"{_f(r.server_rss_peak_mb)} | {_f(r.server_cpu_cores, 2)} / "
            f"{_f(r.postgres_cpu_cores, 2)} / {_f(r.loadgen_cpu_cores, 2)} |")
    lines += ["", "Per flow (a remote payment is two requests: create and confirm):", "",
              "| database | flow | done/s | p50 ms | p95 ms | p99 ms | success | errors |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in report.records:
        for name, f in r.flows.items():
            errors = ", ".join(f"{k} × {v}" for k, v in f["errors"].items()) or "–"
            lines.append(f"| {r.label} | {name} | {_f(f['per_s'])} | {_f(f['p50_ms'], 1)} | "
                         f"{_f(f['p95_ms'], 1)} | {_f(f['p99_ms'], 1)} | "
                         f"{_rate(f['success_rate'])} | {errors} |")
    lines += ["", "Per request (what a client waits for one call; signing and the card's "
              "cryptogram are not counted):", "",
              "| database | request | answered | p50 ms | p95 ms | p99 ms |",
              "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in report.records:
        for name, q in r.request_latency.items():
            lines.append(f"| {r.label} | {name} | {q['count']:,} | {_f(q['p50_ms'], 1)} | "
                         f"{_f(q['p95_ms'], 1)} | {_f(q['p99_ms'], 1)} |")
    if any(r.desks for r in report.records):
        lines += ["", "What the API's desks did in the window, per kind of batch (a batch is one "
                  "transaction; `waiting` is the share of its wall time the desk's thread was not "
                  "computing: waiting for the database, a core or the interpreter; `busy` is the "
                  "share of the window its desk was running batches, per process):", "",
                  "| database | desk | batch | batches/s | requests per batch | wall ms | "
                  "CPU ms | waiting | busy |",
                  "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in report.records:
            for kind, d in r.desks.items():
                lines.append(
                    f"| {r.label} | {d['desk']} | {kind} | {_f(d['batches_per_s'], 1)} | "
                    f"{_f(d['requests_per_batch'], 1)} | {_f(d['wall_ms'], 2)} | "
                    f"{_f(d['cpu_ms'], 2)} | {_rate(d['waiting'], 0)} | "
                    f"{_rate(d['desk_busy'], 0)} |")
    b = report.baseline
    if b:
        lines += ["", f"Baseline, same run: the bare stack (FastAPI + uvicorn, {b['workers']} "
                  f"workers, one endpoint validating a P2P-sized body, no database; "
                  f"`paycell.bench.http_baseline`) driven by the same client over "
                  f"{b['users']} connections: **{_f(b['requests_per_s'])} requests/s**, p50 "
                  f"{_f(b['p50_ms'], 1)} ms, p99 {_f(b['p99_ms'], 1)} ms, load generator "
                  f"{_f(b['loadgen_cpu_cores'], 2)} cores. That is the ceiling paycell's own "
                  "work is measured against."]
    lines.append("")
    for path in images:
        lines += [f"![{Path(path).stem}]({path})", ""]
    for r in report.records:
        verdict = "met" if r.target_met else "not met"
        if r.offered_per_s is None:
            done = f"{_f(r.payments_per_s)} payments/s with {r.users} users (closed loop)"
        else:
            done = (f"{_f(r.offered_per_s)} payments/s offered (open loop), "
                    f"{_f(r.payments_per_s)}/s done, {r.dropped:,} dropped for want of an "
                    f"idle user ({r.dropped_total:,} in the whole run, warm-up included)")
        lines.append(f"- {r.database}: {done}, p99 {_f(r.p99_ms, 1)} ms, success "
                     f"{_rate(r.success_rate)} (target ≥ {TARGET['payments_per_s']:,} "
                     f"payments/s, p99 < {TARGET['p99_ms']:g} ms, 100%: {verdict}).")
    lines.append("")
    return "\n".join(lines)
