"""The garbage collector's settings for long-running processes that build much at start-up.

A server (and the benchmark's load generator) makes some 180,000 objects while importing
and building its app: modules, routes, models. They live as long as the process, yet every
full collection walks them all: under the HTTP benchmark that stopped an API worker for
135-201 ms once or twice a run, and the load generator for 103 ms (a pause every flow in
flight then counts as latency). :func:`settle_heap` moves them out of the collector's reach
and makes the youngest generation's collections rarer.
"""

from __future__ import annotations

import gc

# A request's garbage is almost all freed by reference counting; cycles are few, so the
# youngest generation can wait for 20,000 allocations before the collector looks at it.
YOUNG_THRESHOLD = 20_000


def settle_heap() -> None:
    """Tune the collector for a long-running server whose start-up objects live forever:
    collect once, freeze what survives (the collector no longer walks it) and collect the
    youngest generation less often. Call it after the app is built, before serving."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
