"""``paycell.api.serve``: worker processes on SO_REUSEPORT sockets share the connections that
arrive together, and the supervisor replaces a worker that dies."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx

from paycell.heap import YOUNG_THRESHOLD, settle_heap

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pids(base: str, connections: int) -> list[int]:
    """The worker pid behind each of ``connections`` connections opened at once."""
    async def one() -> int:
        async with httpx.AsyncClient(base_url=base, timeout=10) as hx:
            return int((await hx.get("/pid")).json()["pid"])

    async def all_() -> list[int]:
        return list(await asyncio.gather(*(one() for _ in range(connections))))

    return asyncio.run(all_())


def _wait(base: str, proc: subprocess.Popen[bytes], workers: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited"
        try:
            if len(set(_pids(base, 40))) == workers:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the workers did not all answer in 60 s")


@contextlib.contextmanager
def _serving(workers: int) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``python -m paycell.api.serve`` with ``workers`` serving ``pid_app``; killed after."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "paycell.api.serve", "pid_app:app", "--port", str(port),
         "--workers", str(workers), "--log-level", "warning"], env=env, start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_connections_opened_together_are_shared_and_a_dead_worker_is_replaced() -> None:
    with _serving(workers=2) as (base, proc):
        _wait(base, proc, 2)
        seen = Counter(_pids(base, 64))
        assert len(seen) == 2 and min(seen.values()) >= 8, seen  # not all on one worker
        settled = httpx.get(f"{base}/gc").json()  # settle_heap ran in the worker
        assert settled["frozen"] > 1000 and settled["young"] == YOUNG_THRESHOLD
        victim = next(iter(seen))
        os.kill(victim, signal.SIGKILL)
        _wait(base, proc, 2)
        assert victim not in _pids(base, 40)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_one_worker_serves_in_its_own_process_with_its_heap_settled() -> None:
    with _serving(workers=1) as (base, proc):
        _wait(base, proc, 1)
        assert set(_pids(base, 8)) == {proc.pid}
        settled = httpx.get(f"{base}/gc").json()
        assert settled["frozen"] > 1000 and settled["young"] == YOUNG_THRESHOLD
        proc.send_signal(signal.SIGTERM)
        # uvicorn drains, then raises the signal it caught again: the default action ends it
        assert proc.wait(timeout=30) == -signal.SIGTERM


def test_settle_heap_freezes_what_lives_and_makes_young_collections_rarer() -> None:
    before = gc.get_threshold()
    keep = [[i] for i in range(2000)]  # containers the collector tracks
    try:
        settle_heap()
        assert gc.get_freeze_count() >= len(keep)
        assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
