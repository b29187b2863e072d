"""The generated section of ``docs/benchmarks.md``: the ledger bench's report as markdown,
written between two markers so that the hand-written text around it stays."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from paycell.bench import machine

if TYPE_CHECKING:
    from paycell.bench.ledger import Report

DOCS_START = "<!-- ledger-bench:start -->"
DOCS_END = "<!-- ledger-bench:end -->"

DOCS_INTRO = """\
# Benchmarks

## The ledger: committed payments per second

`paycell bench ledger` (or `make bench`) measures how many payments per second paycell's
ledger commits **durably**, on SQLite and on PostgreSQL, and runs PostgreSQL's own `pgbench`
on the same server as the yardstick.

**What a payment is.** One submission of two *linked* transfers (all or nothing): wallet A →
wallet B for a random 1–500 fen, and wallet A → the fee account for 1 fen. A and B are two
distinct wallets drawn at random from 10,000 funded wallets; every payment also credits the
one shared fee account (`revenue_fees:main:CNY`), so every payment touches the same hot
account, as real fees do. Each transfer has a fresh random id (uuid4), so idempotency is
checked on every one.

**Submitters.** `C` concurrent submitters, asyncio tasks in one event loop, as request
handlers of the HTTP API are. Each posts *one* payment at a time through
`paycell.ledger.batcher.Batcher` and waits for its commit before sending the next one, so
`C` is the number of requests in flight. No caller batches anything itself.

**Group commit.** The batcher's single writer takes everything queued, applies it in one
database transaction (one fsync) and wakes every caller with its own result; while one batch
commits the next fills up, so batches grow with the load. "avg batch" below is transfers per
database transaction.

**Durable commits.** SQLite in WAL mode with `synchronous=FULL` (as `paycell.db` configures
it); PostgreSQL (its version is recorded below) in a private throwaway cluster with `fsync`,
`synchronous_commit` and `full_page_writes` on (the server's defaults). A payment is counted
only once its commit has returned.

**Per level.** Set-up (migrating a fresh database, opening and funding the wallets) is not
timed, and writes with relaxed durability to save time; the measured engine is a fresh one
with the durable settings above. Each concurrency level warms up for 2 s (`--warmup`), then
is measured for `--seconds` (default 10): committed payments and transfers per second,
latency per payment (p50/p95/p99, from submission to the caller being woken) and failures
(must be 0: the wallets hold far more than a run can spend). After the run the fee
account's credits are checked against the number of committed payments.

**Baseline.** `pgbench -i -s 10`, then the stock TPC-B-like script (three UPDATEs, a SELECT
and an INSERT per transaction) with `-c 8 -j 2` and `-c 32 -j 2` for the same duration, on
the same PostgreSQL server and disk. Its best TPS is the yardstick: the targets are SQLite ≥
1× and PostgreSQL ≥ 3× pgbench's best in payments per second (a payment is two transfers
touching three accounts, committed in batches; a pgbench transaction is one commit each).

**Reproduce.** `make bench`, or e.g.
`paycell bench ledger --db sqlite,postgresql --seconds 10 --concurrency 1,8,32,128,512,1024`.
Results go to `bench/results/ledger.json`; each run regenerates the section below
(`--no-docs` leaves this file alone). Figures depend on the machine and on what else runs on
it: the run records the load average at its start.

"""


def _fmt(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def render_markdown(report: Report, image: str | None = None) -> str:
    """The generated section of docs/benchmarks.md (between the markers); ``image`` is the
    chart's path relative to the docs file."""
    lines = [f"### Latest run ({report.generated_at})", ""]
    lines += ["| machine | |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in machine.summary(report.machine)]
    lines += ["", f"Warm-up {report.warmup:g} s and measurement {report.seconds:g} s per level.",
              ""]
    lines += ["| database | concurrency | payments/s | transfers/s | avg batch | p50 ms | "
              "p95 ms | p99 ms | failures | × pgbench best |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in report.records:
        ratio = f"{r.ratio_to_pgbench_best:.2f}×" if r.ratio_to_pgbench_best is not None else "–"
        lines.append(
            f"| {r.database} | {r.concurrency} | {_fmt(r.payments_per_s)} | "
            f"{_fmt(r.transfers_per_s)} | {_fmt(r.avg_batch, 1)} | {_fmt(r.p50_ms, 1)} | "
            f"{_fmt(r.p95_ms, 1)} | {_fmt(r.p99_ms, 1)} | {r.failures} | {ratio} |")
    lines.append("")
    if image:
        lines += [f"![ledger throughput]({image})", ""]
    for run_ in report.runs:
        settings = ", ".join(f"{k}={v}" for k, v in run_.settings.items())
        check = "ok" if run_.consistent else "**MISMATCH**"
        lines.append(f"- {run_.database}: {settings}; {run_.wallets:,} wallets; fee account "
                     f"credits = committed payments: {check}.")
    lines.append("")
    pgb = report.pgbench
    if pgb is None:
        lines += ["pgbench was not run.", ""]
    else:
        lines += [f"pgbench TPC-B-like, scale {pgb.scale}, same server:", "",
                  "| clients | threads | seconds | TPS | latency avg ms |",
                  "| ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {r.clients} | {r.threads} | {r.seconds} | {_fmt(r.tps)} | "
                  f"{_fmt(r.latency_avg_ms, 1)} |" for r in pgb.runs]
        lines += ["", f"pgbench best: **{_fmt(pgb.best_tps)} TPS**.", ""]
        targets = {"sqlite": 1.0, "postgresql": 3.0}
        for run_ in report.runs:
            if not run_.records:
                continue
            top = max(run_.records, key=lambda r: r.payments_per_s)
            goal = targets[run_.database]
            top_ratio = top.ratio_to_pgbench_best
            verdict = "met" if top_ratio is not None and top_ratio >= goal else "not met"
            lines.append(
                f"- {run_.database}: best {_fmt(top.payments_per_s)} payments/s at concurrency "
                f"{top.concurrency} = {_fmt(top_ratio, 2)}× pgbench's best (target ≥ {goal:g}×: "
                f"{verdict}).")
        lines.append("")
    return "\n".join(lines)


def link_from(docs: Path, target: Path) -> str:
    """``target``'s path as a Markdown link in the file ``docs`` (relative, with slashes)."""
    return Path(os.path.relpath(target.resolve(), docs.resolve().parent)).as_posix()


def update_docs(path: Path, section: str, *, start: str = DOCS_START, end: str = DOCS_END,
                heading: str = "") -> None:
    """Replace the generated section between ``start`` and ``end`` of ``path``, keeping the
    rest (or create the file). A missing section is appended, after ``heading``."""
    block = f"{start}\n{section.rstrip()}\n{end}"
    old = path.read_text() if path.exists() else DOCS_INTRO
    i, j = old.find(start), old.find(end)
    if i != -1 and j > i:
        new = old[:i] + block + old[j + len(end):]
    else:
        new = old.rstrip() + "\n\n" + (heading.rstrip() + "\n\n" if heading else "") + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)
