"""The HTTP benchmark's baseline: the same server stack with nothing behind it.

``app`` is a FastAPI application with one endpoint that validates a JSON body the size of
a P2P transfer with pydantic and answers a small JSON object, no database, no auth. Served
by uvicorn with the same number of workers as the platform and driven by the same client
(:mod:`paycell.bench.rawhttp`, one kept-alive connection per user, a process of its own),
its requests per second are the ceiling of FastAPI + uvicorn on this machine: what paycell
could reach if its own work cost nothing. The run measures it beside the platform's figures.

``python -m paycell.bench.http_baseline URL USERS SECONDS WARMUP`` prints the figures as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from pydantic import BaseModel

from paycell.bench.rawhttp import Connection, TransportError

app = FastAPI(title="paycell HTTP baseline", openapi_url=None, docs_url=None, redoc_url=None)


class EchoIn(BaseModel):
    to_msisdn: str
    amount_fen: int
    pin: str


class EchoOut(BaseModel):
    id: str
    amount_fen: int
    state: str


@app.post("/v1/echo", status_code=201)
async def echo(body: EchoIn) -> EchoOut:
    return EchoOut(id="echo", amount_fen=body.amount_fen, state="completed")


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


BODY = json.dumps({"to_msisdn": "13800138000", "amount_fen": 123, "pin": "135790"}).encode()


async def _user(conn: Connection, stop_at: float, warm_end: float, lat: list[float],
                errors: list[str]) -> None:
    clock = time.perf_counter
    while clock() < stop_at:
        began = clock()
        try:
            r = await conn.post("/v1/echo", BODY, {"Idempotency-Key": "baseline"})
        except TransportError as exc:
            errors.append(str(exc))
            continue
        ended = clock()
        if r.status_code != 201:
            errors.append(f"http_{r.status_code}")
        elif ended >= warm_end:
            lat.append(ended - began)


async def drive(url: str, users: int, seconds: float, warmup: float) -> dict[str, Any]:
    """Closed loop: ``users`` connections posting one request at a time."""
    from paycell.bench.loadgen import percentile

    u = urlsplit(url)
    conns = [Connection(u.hostname or "127.0.0.1", u.port or 80) for _ in range(users)]
    began = time.perf_counter()
    warm_end, stop_at = began + warmup, began + warmup + seconds
    lat: list[float] = []
    errors: list[str] = []
    cpu0 = time.process_time()
    try:
        await asyncio.gather(*(_user(c, stop_at, warm_end, lat, errors) for c in conns))
    finally:
        for c in conns:
            c.close()
    lat.sort()
    return {"requests_per_s": round(len(lat) / seconds, 1),
            "p50_ms": round(percentile(lat, 50) * 1000, 2),
            "p99_ms": round(percentile(lat, 99) * 1000, 2),
            "errors": len(errors),
            "loadgen_cpu_cores": round((time.process_time() - cpu0) / (seconds + warmup), 3)}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4:
        raise SystemExit("usage: python -m paycell.bench.http_baseline URL USERS SECONDS WARMUP")
    url, users, seconds, warmup = args[0], int(args[1]), float(args[2]), float(args[3])
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        result = asyncio.run(drive(url, users, seconds, warmup))
    else:
        result = uvloop.run(drive(url, users, seconds, warmup))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
