"""A per-process desk that runs requests of one kind together, a batch per transaction.

While one batch runs, the requests that arrive queue at the desk; when it is done, the next
batch takes all of them (up to ``max_batch``). Under load N requests share one round of
statements and one commit instead of N; alone, a request is a batch of one and waits for
nobody (there is no timer). This is group commit lifted from the ledger to whole use cases
(``docs/dev/http-batching.md``).

Requests that share a key (a client's retry of the same Idempotency-Key; two orders with one
``out_trade_no``) never share a batch: the later one waits for the next, where it finds the
first one's answer. If a batch
fails as a whole with an unexpected error, each of its requests is run again alone, so one bad
request cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class _Waiting(Generic[T]):
    item: T
    keys: tuple[Hashable, ...]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class Desk(Generic[T, R]):
    """Runs ``run(batch) -> answers`` (one per item, in order) on a thread of its own; no
    two items of a batch share any of their ``keys``."""

    def __init__(self, name: str, run: Callable[[list[T]], list[R]],
                 keys: Callable[[T], tuple[Hashable, ...]], *, max_batch: int = 256) -> None:
        self.name, self._run, self._keys, self.max_batch = name, run, keys, max_batch
        self._queue: deque[_Waiting[T]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.items = 0

    async def submit(self, item: T) -> R:
        """Queue ``item`` and wait for its answer (or the exception that refused it)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        with self._cond:
            if self._closed:
                raise RuntimeError(f"the {self.name} desk is closed")
            self._queue.append(_Waiting(item, self._keys(item), loop, fut))
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

    def _take(self) -> list[_Waiting[T]] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None
            taken: list[_Waiting[T]] = []
            later: deque[_Waiting[T]] = deque()
            keys: set[Hashable] = set()
            while self._queue and len(taken) < self.max_batch:
                w = self._queue.popleft()
                if keys.isdisjoint(w.keys):
                    keys.update(w.keys)
                    taken.append(w)
                else:
                    later.append(w)
            later.extend(self._queue)
            self._queue = later
            return taken

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            self.batches += 1
            self.items += len(batch)
            for w, outcome in zip(batch, self._answers(batch), strict=True):
                w.loop.call_soon_threadsafe(_settle, w.future, outcome)

    def _answers(self, batch: list[_Waiting[T]]) -> list[Any]:
        """An answer or an exception per item; a failed batch is re-run item by item."""
        try:
            return list(self._run([w.item for w in batch]))
        except Exception as exc:
            if len(batch) == 1:
                return [exc]
            log.warning("%s desk: a batch of %d failed (%r); running each alone",
                        self.name, len(batch), exc)
        out: list[Any] = []
        for w in batch:
            try:
                out.extend(self._run([w.item]))
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


def desk_of(state: Any, name: str, make: Callable[[], Desk[Any, Any]]) -> Desk[Any, Any]:
    """The app's desk called ``name``, made on first use; the app's lifespan closes them all
    (``state.desks``, a dict it sets up)."""
    desks: dict[str, Desk[Any, Any]] = state.desks
    desk = desks.get(name)
    if desk is None:
        with _MAKING:
            desk = desks.get(name)
            if desk is None:
                desk = desks[name] = make()
    return desk


_MAKING = threading.Lock()
