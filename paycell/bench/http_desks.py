"""What the API's desks did while the HTTP benchmark measured, read from their batch logs.

Each API process's desks (``api/desk.py``) write a line per batch to
``<dir>/<pid>-<desk>.tsv`` when ``PAYCELL_DESK_LOG_DIR`` is set: when the batch began
(``time.perf_counter()``, the system's monotonic clock, so the benchmark's own clock can cut
the window), its kind, its size, and its wall and CPU milliseconds. Per kind this gives the
figures the latency is made of: how many batches a second, how many requests in each, how
long each took, and how much of that the desk's thread spent waiting (for the database, for
a core, for the interpreter) rather than computing.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any


def read(log_dir: Path, start: float, end: float) -> dict[str, dict[str, Any]]:
    """Per kind of batch, over the batches that began in ``[start, end)`` in every process:
    its desk, batches per second, requests per batch, mean wall and CPU ms per batch, the
    share of the wall time not spent on the desk thread's CPU (``waiting``), and the share
    of the window the desk was running batches (``busy``, averaged over the processes)."""
    span = end - start
    if span <= 0 or not log_dir.is_dir():
        return {}
    processes: dict[str, set[str]] = defaultdict(set)  # desk -> the processes that logged
    sums: dict[tuple[str, str], list[float]] = {}  # (desk, kind) -> batches, items, wall, cpu
    for path in sorted(log_dir.glob("*.tsv")):
        pid, _, desk = path.stem.partition("-")
        processes[desk].add(pid)
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) != 5:
                continue  # a line cut short by a kill
            began, kind, n, wall_ms, cpu_ms = parts
            if not start <= float(began) < end:
                continue
            s = sums.setdefault((desk, kind), [0, 0, 0.0, 0.0])
            s[0] += 1
            s[1] += int(n)
            s[2] += float(wall_ms)
            s[3] += float(cpu_ms)
    busy: dict[str, float] = defaultdict(float)  # desk -> wall ms in the window, all kinds
    for (desk, _), s in sums.items():
        busy[desk] += s[2]
    out: dict[str, dict[str, Any]] = {}
    for (desk, kind), (batches, items, wall, cpu) in sorted(sums.items()):
        out[kind] = {
            "desk": desk,
            "batches_per_s": round(batches / span, 1),
            "requests_per_batch": round(items / batches, 1),
            "wall_ms": round(wall / batches, 2),
            "cpu_ms": round(cpu / batches, 2),
            "waiting": round(1 - cpu / wall, 3) if wall > 0 else None,
            "desk_busy": round(busy[desk] / 1e3 / span / len(processes[desk]), 3),
        }
    return out
