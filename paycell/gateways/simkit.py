"""What the loopback simulators (bank, carrier) share: operations kept by reference,
scripted behaviours, a reply that never comes, and a uvicorn server in a thread.

Behaviours (per subject, i.e. per card or per MSISDN, or queued for its next operations):

- ``approve``: process normally (the subject's own rules may still refuse: no funds...);
- ``reject:<reason>``: refuse with that reason, e.g. ``reject:card_blocked``;
- ``timeout``: process normally but never answer in time; a status query tells the outcome;
- ``lost``: never answer and forget the request (a status query says not found);
- ``delayed``: answer ``pending``; the outcome comes with a later status query once
  ``delay_s`` has passed on the simulator's clock, or when a test settles it.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from paycell.clock import Clock, SystemClock, rfc3339

KNOWN = ("approve", "timeout", "lost", "delayed")


def valid_behaviour(name: str) -> bool:
    return name in KNOWN or (name.startswith("reject:") and len(name) > len("reject:"))


@dataclass
class Operation:
    reference: str
    kind: str  # debit | credit | charge
    subject: str  # the card's PAN or the MSISDN
    amount_fen: int
    currency: str
    fingerprint: tuple[Any, ...]
    created_at: int
    status: str = "pending"
    reason: str | None = None
    partner_ref: str | None = None
    settle_after: int | None = None  # delayed: settled by a status query after this time
    extra: dict[str, Any] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        return {"reference": self.reference, "kind": self.kind, "status": self.status,
                "reason": self.reason, "amount_fen": self.amount_fen,
                "currency": self.currency, "partner_ref": self.partner_ref,
                "created_at": rfc3339(self.created_at), **self.extra}


Process = Callable[[Operation], None]  # sets status/reason/partner_ref by the subject's rules


class BehavioursIn(BaseModel):
    behaviours: list[str] = Field(min_length=1, max_length=100,
                                  examples=[["timeout", "approve"]])


class SettleIn(BaseModel):
    outcome: str = Field(pattern="^(approved|rejected)$",
                         description="approved runs the subject's rules; rejected refuses")
    reason: str | None = Field(None, max_length=60)


class SimCore:
    """Operations by reference and the scripted behaviours of one simulator."""

    def __init__(self, prefix: str, *, clock: Clock | None = None, hang_s: float = 15.0,
                 delay_s: float = 5.0) -> None:
        self.prefix = prefix
        self.clock = clock or SystemClock()
        self.hang_s = hang_s
        self.delay_us = int(delay_s * 1_000_000)
        self.ops: dict[str, Operation] = {}
        self.queues: dict[str, deque[str]] = {}
        self.closing = False
        self._numbers = itertools.count(1)

    def next_ref(self) -> str:
        return f"{self.prefix}{next(self._numbers):08d}"

    def queue(self, subject: str, behaviours: list[str]) -> None:
        self.queues.setdefault(subject, deque()).extend(behaviours)

    def behaviour(self, subject: str, default: str) -> str:
        q = self.queues.get(subject)
        return q.popleft() if q else default

    async def hang(self) -> None:
        """Keep the caller waiting past its timeout (or until the simulator stops)."""
        deadline = time.monotonic() + self.hang_s
        while not self.closing and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def submit(self, op: Operation, behaviour: str, process: Process
                     ) -> JSONResponse:
        """Handle a new operation (or a repeat of a known reference) per ``behaviour``."""
        known = self.ops.get(op.reference)
        if known is not None:
            if known.fingerprint != op.fingerprint:
                return JSONResponse({"status": "rejected", "reason": "reference_reused"},
                                    status_code=409)
            self.settle_if_due(known, process)
            return JSONResponse(known.view())
        if behaviour == "lost":
            await self.hang()
            return JSONResponse({"status": "unknown"}, status_code=504)
        if behaviour.startswith("reject:"):
            op.status, op.reason = "rejected", behaviour.split(":", 1)[1]
        elif behaviour == "delayed":
            op.settle_after = self.clock.now_us() + self.delay_us
        else:
            process(op)
        op.partner_ref = op.partner_ref or self.next_ref()
        self.ops[op.reference] = op
        if behaviour == "timeout":
            await self.hang()
            return JSONResponse({"status": "unknown"}, status_code=504)
        return JSONResponse(op.view())

    def settle_if_due(self, op: Operation, process: Process) -> None:
        if (op.status == "pending" and op.settle_after is not None
                and self.clock.now_us() >= op.settle_after):
            op.settle_after = None
            process(op)

    def status(self, reference: str, process: Process) -> JSONResponse:
        op = self.ops.get(reference)
        if op is None:
            return JSONResponse({"status": "not_found"}, status_code=404)
        self.settle_if_due(op, process)
        return JSONResponse(op.view())

    def settle(self, reference: str, body: SettleIn, process: Process) -> JSONResponse:
        op = self.ops.get(reference)
        if op is None:
            return JSONResponse({"status": "not_found"}, status_code=404)
        if op.status == "pending":
            op.settle_after = None
            if body.outcome == "approved":
                process(op)
            else:
                op.status, op.reason = "rejected", body.reason or "declined"
        return JSONResponse(op.view())

    def close(self) -> None:
        self.closing = True


def behaviours_or_422(body: BehavioursIn) -> JSONResponse | None:
    bad = [b for b in body.behaviours if not valid_behaviour(b)]
    if bad:
        return JSONResponse({"status": "invalid", "reason": f"unknown behaviour {bad[0]!r}",
                             "known": [*KNOWN, "reject:<reason>"]}, status_code=422)
    return None


class SimServer:
    """Serve an ASGI app with uvicorn in a daemon thread on a loopback port (0: any free
    one). Tests start the simulators this way and talk to them over real HTTP."""

    def __init__(self, app: FastAPI, *, host: str = "127.0.0.1", port: int = 0,
                 on_stop: Callable[[], None] | None = None,
                 lifespan: Literal["on", "off"] = "off") -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                lifespan=lifespan, timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.host = host
        self.on_stop = on_stop
        self._thread = threading.Thread(target=self.server.run, name="paycell-sim",
                                        daemon=True)

    def start(self, timeout_s: float = 10.0) -> SimServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the simulator did not start")
            time.sleep(0.01)
        return self

    @property
    def port(self) -> int:
        sockets = self.server.servers[0].sockets
        return int(sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self.on_stop is not None:
            self.on_stop()
        self.server.should_exit = True
        self._thread.join(10)
