"""A minimal HTTP/1.1 client for the load generator: one kept-alive connection per virtual
user, requests written as bytes, responses read by Content-Length (or chunked).

Why not httpx: against a trivial FastAPI endpoint on this 2-core machine, one
``httpx.AsyncClient`` topped out at 315 requests/s using a whole core, while this client
drove the same server at 7,987 requests/s using a third of one (docs/benchmarks.md). A load
generator that needs more CPU than the server it measures measures itself.

It speaks only what the benchmark needs: POST with a JSON body, keep-alive, a reconnect
when the server has closed an idle connection (uvicorn does after 5 s).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

MAX_HEADER_BYTES = 64 * 1024


class TransportError(Exception):
    """The connection failed before a whole response came back."""


@dataclass(slots=True)
class Response:
    status_code: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


class Connection:
    """One kept-alive connection to ``host:port``; not shared between tasks."""

    def __init__(self, host: str, port: int, timeout_s: float = 30.0) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._host_header = f"{host}:{port}"
        self.retries = 0  # requests sent again on a fresh connection

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> Response:
        """Send one POST; a connection the server closed while idle is reopened and the
        request sent once more (callers give every request an Idempotency-Key, so a
        repeat cannot act twice). Raises :class:`TransportError` otherwise."""
        head = [f"POST {path} HTTP/1.1\r\nHost: {self._host_header}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"]
        head.extend(f"{k}: {v}\r\n" for k, v in headers.items())
        head.append("\r\n")
        raw = "".join(head).encode("latin-1") + body
        # A kept-alive connection may have been closed by the server while idle: then one
        # more try on a fresh one. A fresh connection that fails is a real failure.
        for again in (False, True):
            fresh = self._writer is None
            try:
                return await asyncio.wait_for(self._exchange(raw), self.timeout_s)
            except (ConnectionError, asyncio.IncompleteReadError, TransportError,
                    TimeoutError) as exc:
                self.close()
                if fresh or again or isinstance(exc, TimeoutError):
                    why = "timed out" if isinstance(exc, TimeoutError) else str(exc)
                    raise TransportError(why or type(exc).__name__) from exc
            self.retries += 1
        raise AssertionError("unreachable")

    async def _exchange(self, raw: bytes) -> Response:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(raw)
        try:
            head = await self._reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError as exc:
            raise TransportError("response headers too long") from exc
        lines = head[:-4].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise TransportError(f"not an HTTP/1.1 response: {lines[0][:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            content = await self._chunked()
        else:
            content = await self._reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, headers, content)

    async def _chunked(self) -> bytes:
        assert self._reader is not None
        out = bytearray()
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")
                return bytes(out)
            out += await self._reader.readexactly(size)
            await self._reader.readexactly(2)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
