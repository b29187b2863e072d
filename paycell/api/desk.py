"""A per-process desk that runs requests in batches, a batch per transaction and kind.

While one batch runs, the requests that arrive queue at the desk; when it is done, the next
batch takes the oldest request's kind with every request of that kind queued so far (up to
``max_batch``). Under load N requests share one round of statements and one commit instead
of N; alone, a request is a batch of one and waits for nobody (there is no timer). This is
group commit lifted from the ledger to whole use cases (``docs/dev/http-batching.md``).

A request comes with its :class:`Lane`: the kind of work (a P2P transfer, a tap...) and the
function that runs a batch of that kind. The payment kinds share one desk per process, so
the kinds take turns, each batch in a transaction of its own. The turn goes to the kind that
has waited longest, and its batch is taken when its turn comes, not when an earlier round
began: a request that arrives while another kind runs rides in its own kind's next batch
instead of waiting for a whole round of every kind (measured in ``docs/benchmarks.md``,
fourteenth session). One desk rather than one per kind means one transaction at a time
per process: batches that would have contended for the same wallets' row locks take turns
instead, and grow while they wait, which is what batching is for.

Requests that share a key (a client's retry of the same Idempotency-Key; two orders with one
``out_trade_no``) never share a batch, and never overtake one another: the later one waits
for a later batch, where it finds the first one's answer. If a lane's batch fails as a whole
with an unexpected error, each of its requests is run again alone, so one bad request cannot
fail its neighbours.

With a ``log`` file a desk writes a line per batch (when it began, its kind, its size, its
wall and CPU milliseconds), which the HTTP benchmark reads to show what the desks did while
it measured (``bench/http_desks.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Lane(Generic[T, R]):
    """A kind of work: ``run(batch) -> answers`` (one per item, in order: an ``R``, or an
    exception to raise to that item's caller), and the ``keys`` of an item, no two items of
    a batch sharing any."""

    name: str
    run: Callable[[list[T]], Sequence[object]]
    keys: Callable[[T], tuple[Hashable, ...]]


@dataclass(slots=True)
class _Waiting:
    lane: Lane[Any, Any]
    item: Any
    keys: tuple[Hashable, ...]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class Desk:
    """Runs batches on a thread of its own: one kind at a time, the oldest request's first,
    each batch's items in arrival order."""

    def __init__(self, name: str, *, max_batch: int = 256, log: Path | None = None) -> None:
        self.name, self.max_batch, self.log = name, max_batch, log
        self._queue: deque[_Waiting] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.batches = 0  # lane batches run, so a transaction each
        self.items = 0

    async def submit(self, lane: Lane[T, R], item: T) -> R:
        """Queue ``item`` and wait for its answer (or the exception that refused it)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        with self._cond:
            if self._closed:
                raise RuntimeError(f"the {self.name} desk is closed")
            self._queue.append(_Waiting(lane, item, lane.keys(item), loop, fut))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=f"desk-{self.name}",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()
        result: R = await fut
        return result

    def close(self) -> None:
        """Answer what is queued, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _take(self) -> list[_Waiting] | None:
        """The next lane batch: every queued item of the oldest item's kind, in arrival
        order, except those that share a key with an item queued before them."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None
            lane = self._queue[0].lane.name
            taken: list[_Waiting] = []
            later: deque[_Waiting] = deque()
            seen: set[Hashable] = set()
            for w in self._queue:
                if (w.lane.name == lane and len(taken) < self.max_batch
                        and seen.isdisjoint(w.keys)):
                    taken.append(w)
                else:
                    later.append(w)
                seen.update(w.keys)
            self._queue = later
            return taken

    def _loop(self) -> None:
        out: IO[str] | None = None  # a line per batch, written at once (a kill loses none)
        if self.log is not None:
            try:
                out = open(self.log, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
            except OSError as exc:  # the payments still run, unlogged
                log.warning("%s desk: cannot log batches to %s: %s", self.name, self.log, exc)
        try:
            while (group := self._take()) is not None:
                self.batches += 1
                self.items += len(group)
                began, cpu = time.perf_counter(), time.thread_time()
                outcomes = self._answers(group)
                wall, cpu = time.perf_counter() - began, time.thread_time() - cpu
                for w, outcome in zip(group, outcomes, strict=True):
                    w.loop.call_soon_threadsafe(_settle, w.future, outcome)
                if out is not None:
                    out.write(f"{began:.6f}\t{group[0].lane.name}\t{len(group)}\t"
                              f"{wall * 1e3:.3f}\t{cpu * 1e3:.3f}\n")
        finally:
            if out is not None:
                out.close()

    def _answers(self, group: list[_Waiting]) -> list[Any]:
        """An answer or an exception per item; a failed batch is re-run item by item."""
        run = group[0].lane.run
        try:
            return list(run([w.item for w in group]))
        except Exception as exc:
            if len(group) == 1:
                return [exc]
            log.warning("%s desk: a %s batch of %d failed (%r); running each alone",
                        self.name, group[0].lane.name, len(group), exc)
        out: list[Any] = []
        for w in group:
            try:
                out.extend(run([w.item]))
            except Exception as exc:
                out.append(exc)
        return out


def _settle(fut: asyncio.Future[Any], outcome: Any) -> None:
    if fut.cancelled():
        return
    if isinstance(outcome, BaseException):
        fut.set_exception(outcome)
    else:
        fut.set_result(outcome)


def desk_of(state: Any, name: str = "payments") -> Desk:
    """The app's desk called ``name``, made on first use; the app's lifespan closes them all
    (``state.desks``, a dict it sets up). With ``state.desk_log_dir`` set, the desk logs
    its batches to ``<dir>/<pid>-<name>.tsv``."""
    desks: dict[str, Desk] = state.desks
    desk = desks.get(name)
    if desk is None:
        with _MAKING:
            desk = desks.get(name)
            if desk is None:
                logs = getattr(state, "desk_log_dir", None)
                desk = desks[name] = Desk(
                    name, log=Path(logs) / f"{os.getpid()}-{name}.tsv" if logs else None)
    return desk


_MAKING = threading.Lock()
