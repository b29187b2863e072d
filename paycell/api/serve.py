"""Serving with several worker processes, each accepting on a listening socket of its own.

uvicorn's ``--workers`` shares one listening socket among its processes, and whichever
worker wakes first accepts every connection waiting: clients that open their connections
together (a load generator, a pool of POS gateways, a reverse proxy's keep-alive pool) can
all land on one worker while the others idle. Measured here with the HTTP benchmark's 64
connections on two workers: 0.84 cores busy in one, 0.002 in the other.

``serve(target, workers=N)`` starts N processes; each binds its own socket to the same
address with ``SO_REUSEPORT``, and the kernel spreads new connections across the sockets by
their addresses, evenly. The supervisor restarts a worker that dies, and on SIGTERM or
SIGINT stops them all (each drains its requests as uvicorn does). Without ``SO_REUSEPORT``
(not Linux or BSD), or with one worker, it is one uvicorn server in this process.

Each serving process settles its heap once the app is built
(:func:`paycell.heap.settle_heap`): full collections no longer walk the objects start-up made.

``python -m paycell.api.serve APP --host H --port P --workers N [--factory]`` runs it (the
benchmark's and the bank test's servers do).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing
import signal
import socket
import threading
from multiprocessing.process import BaseProcess
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from paycell.heap import settle_heap

log = logging.getLogger("paycell.serve")

APP = "paycell.api.app:create_app"
_RESTART_PAUSE_S = 0.5


def serve(target: str = APP, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          factory: bool = True, log_level: str = "info") -> None:
    """Serve ``target`` (an app, or with ``factory`` a function making one) until stopped."""
    if workers <= 1 or not hasattr(socket, "SO_REUSEPORT"):
        _serve_one(target, host, port, factory, log_level, sockets=None)
        return
    spawn = multiprocessing.get_context("spawn")
    args = (target, host, port, factory, log_level)
    procs: list[BaseProcess] = []
    stop = threading.Event()

    def start() -> BaseProcess:
        p = spawn.Process(target=_worker, args=args, name="paycell-worker")
        p.start()
        return p

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        procs.extend(start() for _ in range(workers))
        log.info("%d workers on %s:%d, each on a SO_REUSEPORT socket", workers, host, port)
        while not stop.wait(_RESTART_PAUSE_S):
            for i, p in enumerate(procs):
                if not p.is_alive():
                    log.warning("worker %s exited (%s): starting another", p.pid, p.exitcode)
                    procs[i] = start()
    finally:
        for p in procs:
            if p.is_alive() and p.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    p.terminate()  # SIGTERM: uvicorn finishes what is in flight
        for p in procs:
            p.join()
        for s, handler in previous.items():
            signal.signal(s, handler)


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` that other processes can bind too (``SO_REUSEPORT``):
    the kernel shares the incoming connections among them."""
    family, kind, proto, _, addr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(addr)
    sock.listen(2048)
    return sock


def _worker(target: str, host: str, port: int, factory: bool, log_level: str) -> None:
    _serve_one(target, host, port, factory, log_level,
               sockets=[listening_socket(host, port)])


def _serve_one(target: str, host: str, port: int, factory: bool, log_level: str, *,
               sockets: list[socket.socket] | None) -> None:
    """One uvicorn server in this process: the app built, the heap settled, then served."""
    config = uvicorn.Config(target, factory=factory, host=host, port=port,
                            log_level=log_level)
    config.load()
    settle_heap()
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=sockets)
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m paycell.api.serve", description=__doc__)
    p.add_argument("app", nargs="?", default=APP)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--factory", action="store_true")
    p.add_argument("--log-level", default="info")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    serve(a.app, host=a.host, port=a.port, workers=a.workers, factory=a.factory,
          log_level=a.log_level)


if __name__ == "__main__":
    main()
