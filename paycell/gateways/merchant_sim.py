"""The loopback demo merchant: receives payment notifications the way a merchant's server
would, so that ``make run`` shows them arriving.

Mounted under ``/sim/merchant`` of ``paycell serve`` (see ``simulators.py``); the demo
merchants' notify URL is ``/sim/merchant/notify/{merchant_code}``. Each POST is checked with
:func:`paycell.notifications.signing.verify` against the merchant's current webhook secrets
(a verified notification is answered ``success``, anything else 401 ``fail``), and kept in
memory with its verdict. ``GET /sim/merchant`` shows what arrived (HTML),
``GET /sim/merchant/received`` the same as JSON. ``PUT /sim/merchant/_sim/config`` with
``{"fail_first": N}`` makes it answer the first N attempts of each notification with 500,
to watch the retries.
"""

from __future__ import annotations

import html
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import BaseModel, Field

from paycell.clock import Clock, SystemClock, rfc3339
from paycell.notifications.signing import HEADER_ID, WebhookVerificationError, verify

# merchant code -> its webhook secrets (current first), or None for an unknown merchant
SecretsLookup = Callable[[str], list[bytes] | None]
KEEP = 500  # received notifications remembered, newest kept


@dataclass(frozen=True)
class Received:
    """One POST as the demo merchant saw it."""

    received_at: str
    merchant_code: str
    webhook_id: str | None
    attempt: int  # 1 for the first POST of this notification id
    verified: bool
    error: str | None  # why it was not trusted (a webhook_* code), or None
    answered: int  # the HTTP status it got back
    event: str | None
    trade_no: str | None
    out_trade_no: str | None
    state: str | None
    amount_fen: int | None


class ConfigIn(BaseModel):
    fail_first: int = Field(ge=0, le=100, description="answer the first N attempts of each "
                            "notification with 500 (0: acknowledge at once)")


def secrets_from_context(get_ctx: Callable[[], Any]) -> SecretsLookup:
    """Look the merchant's webhook secrets up in paycell itself (``get_ctx()`` gives the
    running app's context: known once its lifespan has started)."""
    from paycell.merchants.service import find_by_code, webhook_secrets

    def lookup(code: str) -> list[bytes] | None:
        ctx = get_ctx()
        merchant = find_by_code(ctx, code)
        return None if merchant is None else webhook_secrets(ctx, merchant.id)

    return lookup


class MerchantSimulator:
    """The demo merchant's state (in memory, per process); :meth:`app` is its HTTP face."""

    def __init__(self, secrets: SecretsLookup, *, clock: Clock | None = None,
                 fail_first: int = 0, keep: int = KEEP) -> None:
        self.secrets = secrets
        self.clock = clock or SystemClock()
        self.fail_first = fail_first
        self.received: deque[Received] = deque(maxlen=keep)
        self._attempts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def receive(self, merchant_code: str, headers: Mapping[str, str],
                body: bytes) -> tuple[int, str]:
        """Check and record one notification; the (status, body) to answer with."""
        now_us = self.clock.now_us()
        payload: dict[str, Any] = {}
        error: str | None = None
        try:
            secrets = self.secrets(merchant_code)
        except Exception:  # the platform's database is busy or gone: ask for a retry
            secrets, error = [], "lookup_failed"
        if secrets is None:
            error = "unknown_merchant"
        elif error is None:
            try:
                payload = verify(secrets, headers, body, now_us // 1_000_000)
            except WebhookVerificationError as exc:
                error = exc.code
        msg_id = next((v for k, v in headers.items() if k.lower() == HEADER_ID), None)
        with self._lock:
            key = msg_id or "?"
            self._attempts[key] += 1
            attempt = self._attempts[key]
            if error is not None:
                status, answer = (503 if error == "lookup_failed" else 401), f"fail: {error}"
            elif attempt <= self.fail_first:
                status, answer = 500, "fail: the demo merchant is set to fail this attempt"
            else:
                status, answer = 200, "success"
            data = payload.get("data") or {}
            self.received.append(Received(
                received_at=rfc3339(now_us), merchant_code=merchant_code, webhook_id=msg_id,
                attempt=attempt, verified=error is None, error=error, answered=status,
                event=payload.get("event"), trade_no=data.get("trade_no"),
                out_trade_no=data.get("out_trade_no"), state=data.get("state"),
                amount_fen=data.get("amount_fen")))
        return status, answer

    def listing(self, merchant_code: str | None = None) -> list[Received]:
        """What arrived, newest first (optionally for one merchant)."""
        with self._lock:
            items = list(self.received)
        return [r for r in reversed(items)
                if merchant_code is None or r.merchant_code == merchant_code.upper()]

    def app(self) -> FastAPI:
        sim = FastAPI(title="paycell demo merchant (simulator)", docs_url=None,
                      redoc_url=None, openapi_url=None)

        @sim.post("/notify/{merchant_code}", response_class=PlainTextResponse)
        async def notify(merchant_code: str, request: Request) -> PlainTextResponse:
            body = await request.body()
            status, answer = await run_in_threadpool(
                self.receive, merchant_code.upper(), dict(request.headers), body)
            return PlainTextResponse(answer, status_code=status)

        @sim.get("/received")
        def received(merchant: str | None = None) -> dict[str, Any]:
            items = self.listing(merchant)
            return {"fail_first": self.fail_first, "count": len(items),
                    "verified": sum(r.verified for r in items),
                    "items": [asdict(r) for r in items]}

        @sim.put("/_sim/config")
        def config(body: ConfigIn) -> dict[str, int]:
            self.fail_first = body.fail_first
            return {"fail_first": self.fail_first}

        @sim.get("/", response_class=HTMLResponse)
        def page(request: Request, merchant: str | None = None) -> HTMLResponse:
            here = request.scope.get("root_path", "")
            return HTMLResponse(render(self.listing(merchant), self.fail_first, here))

        return sim


COLUMNS = ("received_at", "merchant_code", "event", "trade_no", "out_trade_no", "amount_fen",
           "webhook_id", "attempt", "verified", "answered")


def render(items: list[Received], fail_first: int, root: str = "") -> str:
    """The HTML page: one row per POST, newest first."""
    def cell(r: Received, col: str) -> str:
        if col == "verified":
            return "yes" if r.verified else f"<b>no</b> ({html.escape(r.error or '')})"
        value = getattr(r, col)
        return "" if value is None else html.escape(str(value))

    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    rows = "".join("<tr>" + "".join(f"<td>{cell(r, c)}</td>" for c in COLUMNS) + "</tr>"
                   for r in items)
    good = sum(r.verified for r in items)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<title>demo merchant: notifications received</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}</style></head><body>"
        "<h1>Notifications received by the demo merchant</h1>"
        f"<p>{len(items)} POSTs, {good} with a valid signature; newest first. "
        f"Failing the first {fail_first} attempt(s) of each notification. "
        f"JSON: <a href='{html.escape(root)}/received'>{html.escape(root)}/received</a>.</p>"
        f"<table><tr>{head}</tr>{rows}</table></body></html>")
