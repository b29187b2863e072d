"""A test merchant on loopback and a context on the test's database with a ManualClock.

``MerchantServer`` is a real threaded HTTP server on 127.0.0.1 (port 0): it answers each
notification from its script (fail the first N, answer slowly, close the connection...),
then acknowledges with ``success``; it records every request it received, and verifies the
signature of each one with the merchant's secret(s) at the driven clock's time.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import Engine

from paycell.clock import ManualClock
from paycell.config import Settings
from paycell.context import Context, build_context
from paycell.notifications import service, signing

API_KEY = "test-operator-key"
SCHEDULE = "15s,3m,1h"


@dataclass
class Answer:
    status: int = 200
    body: str = "success"
    delay_s: float = 0.0  # wait this long before answering (timeouts)
    close: bool = False  # drop the connection without answering


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at_us: int  # the driven clock when it arrived
    verified: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class MerchantServer:
    clock: ManualClock
    secrets: list[bytes] = field(default_factory=list)
    script: list[Answer] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    on_request: Callable[[Received], None] | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                rec = Received({k.lower(): v for k, v in self.headers.items()}, body,
                               server.clock.now_us())
                try:
                    rec.verified = signing.verify(server.secrets, rec.headers, body,
                                                  rec.at_us // 1_000_000)
                except signing.WebhookVerificationError as exc:
                    rec.error = exc.code
                with server._lock:
                    server.received.append(rec)
                    answer = server.script.pop(0) if server.script else Answer()
                if server.on_request is not None:
                    server.on_request(rec)
                if answer.close:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                data = answer.body.encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("content-type", "text/plain")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (a timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/notify"

    def ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.received]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port_url() -> str:
    """A loopback URL nobody listens on: connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/notify"


def make_settings(db_url: str, **more: Any) -> Settings:
    values: dict[str, Any] = dict(database_url=db_url, run_workers=False,
                                  operator_api_key=API_KEY, notify_schedule=SCHEDULE,
                                  notify_timeout_s=2.0)
    values.update(more)
    return Settings(_env_file=None, **values)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ctx(engine: Engine, db_url: str, clock: ManualClock) -> Context:
    return build_context(engine, settings=make_settings(db_url), clock=clock)


@pytest.fixture
def merchant_server(clock: ManualClock) -> Iterator[MerchantServer]:
    server = MerchantServer(clock)
    try:
        yield server
    finally:
        server.close()


_merchant_numbers = iter(range(1, 10_000))


def new_merchant(ctx: Context, server: MerchantServer | None = None) -> int:
    """An active merchant made through the real onboarding; its webhook secrets are given
    to ``server`` so that it can verify what it receives."""
    from paycell.merchants import service as merchants

    made = merchants.create_active_merchant(
        ctx, name=f"Test shop {next(_merchant_numbers)}", category="retail")
    if server is not None:
        server.secrets = merchants.webhook_secrets(ctx, made.merchant.id)
    return int(made.merchant.id)


def notify(ctx: Context, merchant_id: int, url: str, event: str = "payment.succeeded",
           data: dict[str, Any] | None = None) -> str:
    """Enqueue one notification in a transaction of its own, as a use case would."""
    with ctx.engine.begin() as conn:
        return service.enqueue(conn, merchant_id=merchant_id, event=event,
                               payload=data if data is not None else {"order": "T1"},
                               url=url, now_us=ctx.clock.now_us())


def loads(raw: bytes) -> Any:
    return json.loads(raw)
