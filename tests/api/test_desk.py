"""How the desk (api/desk.py) picks its next batch: the oldest request's kind, with every
request of that kind queued so far, and never a request ahead of an earlier one that shares
a key with it."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paycell.api.desk import Desk, Lane, _Waiting

LANES = {name: Lane(name, lambda items: items, keys=lambda i: ()) for name in "abc"}


def _queue(desk: Desk, items: list[tuple[str, tuple[int, ...]]]) -> None:
    """Queue ``items`` (kind, keys) as requests numbered in arrival order."""
    desk._queue.extend(_Waiting(LANES[lane], n, keys, None, None)  # type: ignore[arg-type]
                       for n, (lane, keys) in enumerate(items))


@given(st.lists(st.tuples(st.sampled_from("abc"),
                          st.lists(st.integers(0, 5), max_size=2).map(tuple)),
                max_size=40),
       st.integers(1, 8))
def test_each_batch_is_one_kind_oldest_first_keys_in_order(
        items: list[tuple[str, tuple[int, ...]]], max_batch: int) -> None:
    desk = Desk("test", max_batch=max_batch)
    _queue(desk, items)
    done: list[int] = []
    while desk._queue:
        oldest = desk._queue[0].item
        batch = desk._take()
        assert batch and batch[0].item == oldest  # the oldest request always goes first
        assert len({w.lane.name for w in batch}) == 1 and len(batch) <= max_batch
        taken = {w.item for w in batch}
        # every request of the kind left behind waits for a reason: room or a shared key
        for w in desk._queue:
            if w.lane is batch[0].lane and len(batch) < max_batch:
                earlier = [v for v in list(batch) + list(desk._queue)
                           if v.item < w.item and v.item not in done]
                assert any(set(v.keys) & set(w.keys) for v in earlier)
        done.extend(sorted(taken))
    assert sorted(done) == list(range(len(items)))  # each request once
    for key in range(6):  # requests sharing a key run in the order they arrived
        holders = [n for n in done if key in items[n][1]]
        assert holders == sorted(holders)


def test_a_request_joins_its_kind_while_another_kind_runs() -> None:
    """A request that arrives while another kind's batch runs rides in its own kind's next
    batch, not after a whole round of every kind queued before it."""
    ran: list[tuple[str, list[int]]] = []
    release = threading.Event()
    loop_box: dict[str, Any] = {}
    desk = Desk("test")

    def run_a(items: list[int]) -> list[int]:
        if items == [1]:  # while a's second batch runs, a b request arrives
            asyncio.run_coroutine_threadsafe(desk.submit(b, 3), loop_box["loop"])
            while len(desk._queue) < 2:
                threading.Event().wait(0.001)
        if items == [0]:
            release.wait()
        ran.append(("a", list(items)))
        return items

    def run_b(items: list[int]) -> list[int]:
        ran.append(("b", list(items)))
        return items

    a: Lane[int, int] = Lane("a", run_a, keys=lambda i: (("a", i),))
    b: Lane[int, int] = Lane("b", run_b, keys=lambda i: (("b", i),))

    async def go() -> list[int]:
        loop_box["loop"] = asyncio.get_running_loop()
        first = asyncio.ensure_future(desk.submit(a, 0))  # holds the desk
        await asyncio.sleep(0.05)
        queued = [asyncio.ensure_future(desk.submit(a, 1)),
                  asyncio.ensure_future(desk.submit(b, 2))]
        await asyncio.sleep(0.05)
        release.set()
        out = [await first, *[await q for q in queued]]
        while len(ran) < 3:
            await asyncio.sleep(0.01)
        return out

    out = asyncio.run(go())
    desk.close()
    assert out == [0, 1, 2]
    assert ran == [("a", [0]), ("a", [1]), ("b", [2, 3])]


def test_the_desk_logs_each_batch(tmp_path: Path) -> None:
    """With a log, a line per batch: when it began, its kind, its size, its wall and CPU
    milliseconds (the HTTP benchmark reads them to show what the desks did)."""
    log = tmp_path / "desk.tsv"
    desk = Desk("test", log=log)
    a: Lane[int, int] = Lane("a", lambda items: [i * 2 for i in items], keys=lambda i: ())
    b: Lane[int, int] = Lane("b", lambda items: [i + 1 for i in items], keys=lambda i: ())

    async def go() -> list[int]:
        first = await desk.submit(a, 1)  # alone: a batch of one
        rest = await asyncio.gather(*(desk.submit(b, i) for i in range(3)))
        return [first, *rest]

    before = time.perf_counter()
    assert asyncio.run(go())[0] == 2
    desk.close()
    lines = [line.split("\t") for line in log.read_text().splitlines()]
    assert (lines[0][1], int(lines[0][2])) == ("a", 1)
    assert sum(int(n) for _, kind, n, _, _ in lines if kind == "b") == 3
    assert len(lines) == desk.batches and desk.items == 4
    for began, _, _, wall_ms, cpu_ms in lines:
        assert before <= float(began) <= time.perf_counter()
        assert float(wall_ms) > 0 and float(cpu_ms) >= 0


def test_a_log_that_cannot_be_opened_stops_no_payment(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    desk = Desk("test", log=tmp_path / "missing" / "desk.tsv")
    a: Lane[int, int] = Lane("a", lambda items: [i * 2 for i in items], keys=lambda i: ())

    async def go() -> list[int]:  # a desk thread that died would leave them waiting
        return list(await asyncio.wait_for(
            asyncio.gather(*(desk.submit(a, i) for i in range(3))), timeout=60))

    with caplog.at_level(logging.WARNING, logger="paycell.api.desk"):
        assert asyncio.run(go()) == [0, 2, 4]
    desk.close()
    assert "cannot log batches" in caplog.text
