"""Group commit: many concurrent callers, one database transaction per batch.

Each caller hands its transfers to :class:`Batcher` and waits. A single writer thread takes
everything queued (up to ``max_batch`` transfers), applies it with one ledger transaction
(one fsync), and wakes every caller with its own results. While one batch commits, the next
fills up, so the batch size grows with the load on its own; with one caller it is one
transfer per commit, as it would be without the batcher.

A caller is told its transfers are committed only after the commit, so a crash at any
moment loses nothing that was acknowledged. Asyncio callers (the HTTP API) are woken with
one ``call_soon_threadsafe`` per event loop per batch.

On PostgreSQL two writers form a pipeline. One decides its batch (Python: the GIL's core)
while the other writes and commits (the server's core). A writer starts a batch only while
no other writer is deciding, and it leaves queued submissions that touch an account of the
other writer's batch in flight for the next batch, so that its row locks do not wait for
the other's commit. Accounts without a balance rule (the fee account every payment credits)
do not count: they are locked only to write (``Ledger._load_accounts``). At low load
the second writer stays idle, so the batches stay as large as with one.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict, deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from paycell.ledger import errors as e
from paycell.ledger.model import TransferFlags, TransferRequest, TransferResult
from paycell.ledger.store import Ledger

# The second writer starts a batch only when at least this many transfers are waiting:
# below it, one writer's batches are already small and splitting them costs commits.
SECOND_WRITER_MIN = 128


@dataclass(slots=True)
class _Item:
    requests: Sequence[TransferRequest]
    future: Any  # concurrent.futures.Future or asyncio.Future
    loop: asyncio.AbstractEventLoop | None


@dataclass(slots=True)
class _Writer:
    index: int
    deciding: bool = False
    busy: bool = False
    accounts: set[int] = field(default_factory=set)  # ruled accounts of its batch in flight


class Batcher:
    def __init__(self, ledger: Ledger, max_batch: int = 8190, writers: int | None = None) -> None:
        self.ledger = ledger
        self.max_batch = max_batch
        # Two writers on PostgreSQL (a pipeline, see the module's docstring); one on SQLite,
        # whose writers queue for one database lock anyway.
        self.writers = writers if writers is not None else (2 if ledger._pg else 1)
        self._queue: deque[_Item] = deque()
        self._queued = 0  # transfers in the queue
        self._cond = threading.Condition()
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._writers = [_Writer(i) for i in range(self.writers)]
        self._stats_lock = threading.Lock()
        self.batches = 0
        self.transfers = 0

    # -- submitting ---------------------------------------------------------------------
    def submit(self, requests: Sequence[TransferRequest]) -> Future[list[TransferResult]]:
        """Queue ``requests`` (kept together in one batch); the future gives their results."""
        fut: Future[list[TransferResult]] = Future()
        self._enqueue(_Item(requests, fut, None))
        return fut

    def post(self, requests: Sequence[TransferRequest]) -> list[TransferResult]:
        """Blocking: post through the group commit and return the results."""
        return self.submit(requests).result()

    async def post_async(self, requests: Sequence[TransferRequest]) -> list[TransferResult]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[TransferResult]] = loop.create_future()
        self._enqueue(_Item(requests, fut, loop))
        return await fut

    def _enqueue(self, item: _Item) -> None:
        reqs = item.requests
        if reqs and reqs[-1].flags & TransferFlags.LINKED:
            # A chain left open would run into the next caller's transfers: refuse it here.
            err = e.LinkedChainOpenError("the last transfer of a submission must not be linked")
            _resolve(item, [TransferResult(r.id, "failed", None, err) for r in reqs])
            return
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._queue.append(item)
            was = self._queued
            self._queued += len(reqs)
            if not self._threads:
                for w in self._writers:
                    t = threading.Thread(target=self._run, args=(w,),
                                         name=f"ledger-batcher-{w.index}", daemon=True)
                    t.start()
                    self._threads.append(t)
            if self.writers == 1:
                self._cond.notify()
            elif was == 0 or was < SECOND_WRITER_MIN <= self._queued:
                # Only these can let a waiting writer start (see _may_start); waking both on
                # every submission would cost a thread switch each.
                self._cond.notify_all()

    # -- the writer ---------------------------------------------------------------------
    def _may_start(self, me: _Writer) -> bool:
        """Whether ``me`` may take a batch now: something is queued, no other writer is
        deciding, and, if another is writing, enough is waiting to be worth a second batch."""
        if not self._queue:
            return False
        others = [w for w in self._writers if w is not me]
        if any(w.deciding for w in others):
            return False
        if any(w.busy for w in others):
            return self._queued >= SECOND_WRITER_MIN
        # All idle: the first writer takes it, so that below the threshold batches form
        # exactly as with one writer.
        return me.index == 0

    def _take(self, me: _Writer) -> list[_Item] | None:
        with self._cond:
            while True:
                while not self._closed and not self._may_start(me):
                    self._cond.wait()
                if self._closed and not self._queue:
                    return None
                taken = self._select(me)
                if taken:
                    me.deciding = me.busy = True
                    return taken
                self._cond.wait()  # all queued work waits for the other writer's commit

    def _select(self, me: _Writer) -> list[_Item]:
        """Queued items for ``me``'s batch, in order, up to ``max_batch`` transfers; those
        touching an account of another writer's batch in flight stay queued."""
        q = self._queue
        taken: list[_Item] = []
        size = 0
        if self.writers == 1 or not any(w.busy for w in self._writers if w is not me):
            while q and (not taken or size + len(q[0].requests) <= self.max_batch):
                item = q.popleft()
                taken.append(item)
                size += len(item.requests)
            self._queued -= size
            me.accounts = self._ruled(taken) if self.writers > 1 else set()
            return taken
        busy = set().union(*(w.accounts for w in self._writers if w is not me))
        unruled = self.ledger.unruled_ids
        kept: deque[_Item] = deque()
        mine: set[int] = set()
        while q:
            item = q.popleft()
            n = len(item.requests)
            if taken and size + n > self.max_batch:
                q.appendleft(item)
                break
            ids = {x for r in item.requests for x in (r.debit_account_id, r.credit_account_id)
                   if x and x not in unruled}
            if ids & busy:
                kept.append(item)
                continue
            taken.append(item)
            size += n
            mine |= ids
        kept.extend(q)
        self._queue = kept
        self._queued -= size
        me.accounts = mine
        return taken

    def _ruled(self, items: list[_Item]) -> set[int]:
        unruled = self.ledger.unruled_ids
        return {x for it in items for r in it.requests
                for x in (r.debit_account_id, r.credit_account_id) if x and x not in unruled}

    def _decided(self, me: _Writer) -> None:
        with self._cond:
            if me.deciding:
                me.deciding = False
                self._cond.notify_all()

    def _run(self, me: _Writer) -> None:
        while True:
            items = self._take(me)
            if items is None:
                return
            try:
                self._commit(items, me)
            finally:
                with self._cond:
                    me.deciding = me.busy = False
                    me.accounts = set()
                    self._cond.notify_all()

    def _commit(self, items: list[_Item], me: _Writer) -> None:
        flat = [r for it in items for r in it.requests]
        try:
            results = self.ledger.post(
                flat, decided=(lambda: self._decided(me)) if self.writers > 1 else None)
        except Exception as exc:
            if len(items) == 1:
                _fail(items[0], exc)
                return
            # Something unexpected (not a business refusal): isolate the culprit by
            # committing each caller's transfers on their own.
            for it in items:
                self._commit([it], me)
            return
        with self._stats_lock:
            self.batches += 1
            self.transfers += len(flat)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any]]] = defaultdict(list)
        pos = 0
        for it in items:
            mine = results[pos : pos + len(it.requests)]
            pos += len(it.requests)
            if it.loop is None:
                it.future.set_result(mine)
            else:
                by_loop[it.loop].append((it.future, mine))
        for loop, pairs in by_loop.items():
            loop.call_soon_threadsafe(_wake_all, pairs)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join()


def _wake_all(pairs: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for fut, value in pairs:
        if not fut.done():
            fut.set_result(value)


def _resolve(item: _Item, value: Any) -> None:
    if item.loop is None:
        item.future.set_result(value)
    else:
        item.loop.call_soon_threadsafe(_wake_all, [(item.future, value)])


def _fail(item: _Item, exc: BaseException) -> None:
    if item.loop is None:
        item.future.set_exception(exc)
    else:
        item.loop.call_soon_threadsafe(
            lambda: item.future.done() or item.future.set_exception(exc))
