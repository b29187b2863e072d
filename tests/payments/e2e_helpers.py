"""Real parts for the end-to-end payment tests: the paycell app served by uvicorn on
loopback, a test merchant's HTTP server that receives (and verifies) notifications, and
shortcuts for the three callers (merchant, subscriber, operator) over real HTTP.

``LiveApp`` runs ``create_app(...)`` under ``uvicorn.Server`` in a thread of its own, on a
socket bound to 127.0.0.1 port 0; its ``ctx`` is the app's own context (the lifespan's),
so the test drives the same clock, ledger and SMS gateway as the server.

``MerchantShop`` is a ``ThreadingHTTPServer`` on 127.0.0.1: it answers each notification
from its script (``Answer``: a status and a body, a delay longer than the platform's
timeout, or a dropped connection), then acknowledges with ``success``. It records every
request (headers, raw body, the driven clock's time) and checks the Standard Webhooks
signature of each with the merchant's webhook secret at that time.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import uvicorn
from cash_helpers import PIN, fund, idem, msisdn  # type: ignore[import-not-found]
from sqlalchemy import Engine, func, select

from paycell.api.app import create_app
from paycell.clock import ManualClock
from paycell.config import Settings
from paycell.context import Context
from paycell.ledger.tables import transfers
from paycell.merchants.model import OnboardedMerchant
from paycell.merchants.service import create_active_merchant
from paycell.merchants.signing import MerchantAuth
from paycell.notifications import signing
from paycell.payments.tables import payment_events
from paycell.subscribers.service import Subscriber, open_account
from paycell.subscribers.tokens import login

API_KEY = "test-operator-key"
ROOT = {"X-API-Key": API_KEY}
S = 1_000_000
STARTUP_S = 20.0  # bound on waiting for uvicorn to come up (PostgreSQL, a slow machine)

__all__ = ["API_KEY", "PIN", "ROOT", "S", "fund", "idem", "msisdn"]


def e2e_settings(db_url: str, **more: Any) -> Settings:
    values: dict[str, Any] = dict(
        database_url=db_url, run_workers=False, operator_api_key=API_KEY,
        # Tests move the clock by days: access tokens outlive them.
        access_token_ttl_s=30 * 86_400, notify_timeout_s=1.0)
    values.update(more)
    return Settings(_env_file=None, **values)


class LiveApp:
    """The paycell app served by uvicorn in a background thread."""

    def __init__(self, settings: Settings, engine: Engine, clock: ManualClock) -> None:
        self.app = create_app(settings, engine=engine, clock=clock)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(self.app, lifespan="on", log_level="warning",
                                access_log=False, timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name="uvicorn", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ctx(self) -> Context:
        c: Context = self.app.state.ctx
        return c

    def start(self) -> LiveApp:
        self.thread.start()
        deadline = time.monotonic() + STARTUP_S
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn stopped while starting (see the log)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start within {STARTUP_S} s")
            time.sleep(0.02)
        return self

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30.0, **kw)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(STARTUP_S)
        self.sock.close()
        assert not self.thread.is_alive(), "uvicorn did not stop"


def live_app(settings: Settings, engine: Engine, clock: ManualClock) -> Iterator[LiveApp]:
    """For fixtures: a started LiveApp, stopped afterwards."""
    app = LiveApp(settings, engine, clock).start()
    try:
        yield app
    finally:
        app.stop()


# -- the test merchant's server ------------------------------------------------------------
@dataclass
class Answer:
    status: int = 200
    body: str = "success"
    delay_s: float = 0.0  # wait this long before answering (longer than the timeout)
    drop: bool = False  # reset the connection without answering


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at_us: int  # the driven clock when it arrived
    verified: dict[str, Any] | None = None  # the body, if the signature verified
    error: str | None = None  # the verification failure's code otherwise


@dataclass
class MerchantShop:
    clock: ManualClock
    secrets: list[bytes] = field(default_factory=list)
    script: list[Answer] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        shop = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                rec = Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                               body, shop.clock.now_us())
                try:
                    rec.verified = signing.verify(shop.secrets, rec.headers, body,
                                                  rec.at_us // S)
                except signing.WebhookVerificationError as exc:
                    rec.error = exc.code
                with shop._lock:
                    shop.received.append(rec)
                    answer = shop.script.pop(0) if shop.script else Answer()
                if answer.drop:  # RST: SO_LINGER 0, then close
                    self.close_connection = True
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
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
                    pass  # the platform gave up waiting

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="merchant",
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/paycell/notify"

    def events(self) -> list[str]:
        return [r.verified["event"] if r.verified else "?" for r in self.received]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- the callers ---------------------------------------------------------------------------
def onboard(ctx: Context, name: str, shop: MerchantShop | None = None) -> OnboardedMerchant:
    """An active merchant through the real onboarding, notified at ``shop``."""
    made = create_active_merchant(ctx, name=name, category="books",
                                  notify_url=shop.url if shop else None)
    if shop is not None:
        shop.secrets = [made.webhook_secret]
    return made


def signed(m: OnboardedMerchant, clock: ManualClock) -> MerchantAuth:
    return MerchantAuth(m.key_id, m.secret, clock=clock)


def subscriber(ctx: Context, number: str | None = None) -> tuple[Subscriber, dict[str, str]]:
    """A wallet opened and logged in: the subscriber and its Authorization header."""
    sub = open_account(ctx, number or msisdn(), PIN)
    tokens, _ = login(ctx, sub.msisdn, PIN, str(uuid.uuid4()))
    return sub, {"Authorization": f"Bearer {tokens.access_token}"}


def order_body(payer: str, out_trade_no: str, **over: Any) -> dict[str, Any]:
    return {"out_trade_no": out_trade_no, "amount_fen": 4990,
            "subject": "Two paperbacks", "payer_msisdn": payer, **over}


def balance(ctx: Context, account_id: int | None) -> int:
    assert account_id is not None
    return ctx.ledger.account(account_id).balance


def available(ctx: Context, account_id: int | None) -> int:
    assert account_id is not None
    return ctx.ledger.account(account_id).available


def transfer_ids(ctx: Context, trade_no: str) -> list[str]:
    """Every ledger transfer of the order (``pay:<trade_no>`` and its release/void)."""
    with ctx.engine.connect() as conn:
        return list(conn.execute(select(transfers.c.id).where(
            transfers.c.id.like(f"pay:{trade_no}%")).order_by(transfers.c.seq)).scalars())


def moves(ctx: Context, order_id: int) -> list[tuple[str | None, str]]:
    """The order's state changes, in order (from ``payment_events``)."""
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(payment_events.c.from_state, payment_events.c.to_state)
                            .where(payment_events.c.order_id == order_id)
                            .order_by(payment_events.c.id)).all()
    return [(r[0], r[1]) for r in rows]


def count_moves(ctx: Context, order_id: int, from_state: str, to_state: str) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(payment_events).where(
            payment_events.c.order_id == order_id, payment_events.c.from_state == from_state,
            payment_events.c.to_state == to_state)).scalar_one())


def run_together(*calls: Any) -> list[Any]:
    """Run the callables at the same moment in threads (a barrier); their results in
    order, or the exception each raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except BaseException as exc:  # reported to the test, which asserts on it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a concurrent call hung"
    return results
