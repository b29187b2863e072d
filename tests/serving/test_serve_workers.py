"""``paycell.api.serve``: worker processes on SO_REUSEPORT sockets share the connections that
arrive together, and the supervisor replaces a worker that dies."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

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


def test_connections_opened_together_are_shared_and_a_dead_worker_is_replaced() -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "paycell.api.serve", "pid_app:app", "--port", str(port),
         "--workers", "2", "--log-level", "warning"], env=env, start_new_session=True)
    try:
        _wait(base, proc, 2)
        seen = Counter(_pids(base, 64))
        assert len(seen) == 2 and min(seen.values()) >= 8, seen  # not all on one worker
        victim = next(iter(seen))
        os.kill(victim, signal.SIGKILL)
        _wait(base, proc, 2)
        assert victim not in _pids(base, 40)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
