"""Delivering notifications: claim, POST outside any transaction, record the attempt.

1. **Claim** one due row in a short transaction: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL
   (so concurrent workers pass each other by), then a conditional UPDATE that sets a claim
   token and a lease (``claimed_until``). On SQLite the transaction holds the write lock
   (BEGIN IMMEDIATE) and the same conditional UPDATE decides. Only the holder of an
   unexpired claim delivers; a worker that crashed leaves a lease that expires.
2. **POST** the signed body with httpx, no transaction open.
3. **Record** the attempt and its consequence in a second transaction: acknowledged ->
   ``delivered``; otherwise the next retry per ``settings.notify_schedule``, or ``failed``
   once the schedule is exhausted (a manual re-send changes neither).

Attempt ``error`` kinds: ``http_status`` (not 2xx), ``not_acknowledged`` (2xx, but the body
was not ``success``), ``timeout``, ``connection_failed`` (refused, unresolvable),
``transport_error`` (the connection broke), ``invalid_url``, ``no_webhook_secret`` (nothing
to sign with; nothing sent), ``merchant_unavailable``.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import Connection, and_, or_, select, update

from paycell import __version__
from paycell.clock import rfc3339
from paycell.context import Context
from paycell.errors import PaycellError
from paycell.notifications import guard, signing
from paycell.notifications.schedule import next_delay, parse_schedule
from paycell.notifications.tables import notification_attempts, notifications

log = logging.getLogger(__name__)

SNIPPET_MAX = 500
READ_MAX = 4096  # more than any acknowledgement; the rest of a long answer is not read
LEASE_MARGIN_S = 60
ACK_BODY = "success"
n = notifications


@dataclass(frozen=True)
class Claimed:
    id: str
    merchant_id: int
    event: str
    payload: str
    url: str
    created_at: int
    auto_attempts: int
    token: str
    at: int  # when the claim was taken: the attempt's time


@dataclass(frozen=True)
class Result:
    acknowledged: bool
    status_code: int | None
    error: str | None
    latency_ms: int
    snippet: str | None


def lease_us(ctx: Context) -> int:
    """How long a claim lasts: every httpx phase may use the whole timeout, plus a margin."""
    return int((4 * ctx.settings.notify_timeout_s + LEASE_MARGIN_S) * 1_000_000)


def _free(now: int) -> Any:
    return or_(n.c.claimed_until.is_(None), n.c.claimed_until <= now)


def _claim(ctx: Context, condition: Any, *, manual: bool = False) -> Claimed | None:
    now = ctx.clock.now_us()
    token = secrets.token_hex(16)
    with ctx.engine.begin() as conn:
        stmt = (select(n).where(condition, _free(now))
                .order_by(n.c.next_attempt_at, n.c.seq).limit(1))
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        row = conn.execute(stmt).first()
        if row is None:
            return None
        claimed = conn.execute(update(n).where(n.c.seq == row.seq, condition, _free(now))
                               .values(claim_token=token, claimed_until=now + lease_us(ctx),
                                       state=row.state if manual else "delivering")).rowcount
    if claimed != 1:
        return None
    return Claimed(row.id, row.merchant_id, row.event, row.payload, row.url, row.created_at,
                   row.auto_attempts, token, now)


def _due(now: int) -> Any:
    # "delivering" rows are only free again when their worker's lease ran out.
    return and_(n.c.state.in_(("pending", "delivering")), n.c.next_attempt_at <= now)


def body_of(c: Claimed) -> bytes:
    """The delivered JSON body; the same bytes on every attempt."""
    doc = {"id": c.id, "event": c.event, "created_at": rfc3339(c.created_at),
           "data": json.loads(c.payload)}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def webhook_secrets(ctx: Context, merchant_id: int) -> list[bytes]:
    from paycell.merchants import service as merchants

    return merchants.webhook_secrets(ctx, merchant_id)


def _post(ctx: Context, client: httpx.Client, c: Claimed) -> Result:
    try:
        keys = webhook_secrets(ctx, c.merchant_id)
    except PaycellError as exc:
        log.warning("notification %s: merchant %s: %s", c.id, c.merchant_id, exc.code)
        return Result(False, None, "merchant_unavailable", 0, exc.code)
    if not keys:
        return Result(False, None, "no_webhook_secret", 0, None)
    if not guard.private_allowed(ctx.settings):
        why = guard.refusal(c.url)
        if why is not None:  # nothing is sent to the operator's own network
            log.warning("notification %s: %s", c.id, why)
            return Result(False, None, "address_forbidden", 0, why)
    body = body_of(c)
    ts = c.at // 1_000_000
    headers = {
        "content-type": "application/json",
        "user-agent": f"paycell-notifications/{__version__}",
        signing.HEADER_ID: c.id,
        signing.HEADER_TIMESTAMP: str(ts),
        signing.HEADER_SIGNATURE: signing.signature_header(keys, c.id, ts, body),
    }
    started = time.monotonic()  # measures the exchange only; rules use ctx.clock

    def ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        with client.stream("POST", c.url, content=body, headers=headers) as resp:
            raw = b""
            for chunk in resp.iter_bytes():
                raw += chunk
                if len(raw) >= READ_MAX:
                    break
            status = resp.status_code
    except httpx.TimeoutException:
        return Result(False, None, "timeout", ms(), None)
    except httpx.ConnectError as exc:
        return Result(False, None, "connection_failed", ms(), str(exc)[:SNIPPET_MAX] or None)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        return Result(False, None, "invalid_url", ms(), str(exc)[:SNIPPET_MAX] or None)
    except httpx.HTTPError as exc:
        return Result(False, None, "transport_error", ms(),
                      f"{type(exc).__name__}: {exc}"[:SNIPPET_MAX])
    text = raw.decode("utf-8", errors="replace")
    snippet = text[:SNIPPET_MAX]
    if not 200 <= status < 300:
        return Result(False, status, "http_status", ms(), snippet)
    if text.strip().lower() != ACK_BODY:
        return Result(False, status, "not_acknowledged", ms(), snippet)
    return Result(True, status, None, ms(), snippet)


def _record(ctx: Context, c: Claimed, r: Result, operator: str | None) -> str:
    """Log the attempt and apply its consequence; the notification's state afterwards."""
    mine = and_(n.c.id == c.id, n.c.claim_token == c.token)
    release = {"claim_token": None, "claimed_until": None}
    with ctx.engine.begin() as conn:
        conn.execute(notification_attempts.insert().values(
            notification_id=c.id, attempted_at=c.at, status_code=r.status_code,
            error=r.error, acknowledged=r.acknowledged, latency_ms=r.latency_ms,
            response_snippet=r.snippet, manual=operator is not None, operator=operator))
        conn.execute(update(n).where(n.c.id == c.id).values(attempts=n.c.attempts + 1))
        if r.acknowledged:
            # Delivered is final, even if our lease ran out and someone else holds it now.
            conn.execute(update(n).where(n.c.id == c.id, n.c.state != "delivered").values(
                state="delivered", delivered_at=c.at, next_attempt_at=None))
            conn.execute(update(n).where(mine).values(**release))
        elif operator is not None:
            conn.execute(update(n).where(mine).values(**release))
        else:
            tried = c.auto_attempts + 1
            delay = next_delay(parse_schedule(ctx.settings.notify_schedule), tried)
            after: dict[str, Any] = (
                {"state": "failed", "next_attempt_at": None} if delay is None else
                {"state": "pending", "next_attempt_at": c.at + delay * 1_000_000})
            conn.execute(update(n).where(mine, n.c.state == "delivering")
                         .values(auto_attempts=tried, **after, **release))
        return str(_state(conn, c.id))


def _state(conn: Connection, notification_id: str) -> Any:
    return conn.execute(select(n.c.state).where(n.c.id == notification_id)).scalar_one()


def _client(ctx: Context) -> httpx.Client:
    t = ctx.settings.notify_timeout_s
    return httpx.Client(timeout=httpx.Timeout(t), follow_redirects=False)


def deliver_due(ctx: Context) -> int:
    """Worker job: attempt every due notification (at most ``settings.notify_batch`` in a
    run); return how many attempts were made. Safe to run in several workers at once: a
    notification is only ever delivered by the one holding its claim. One failing
    notification is logged and does not stop the others."""
    made = 0
    client: httpx.Client | None = None
    try:
        for _ in range(ctx.settings.notify_batch):
            c = _claim(ctx, _due(ctx.clock.now_us()))
            if c is None:
                break
            client = client or _client(ctx)
            try:
                result = _post(ctx, client, c)
                state = _record(ctx, c, result, None)
            except Exception:  # its lease expires and a later run tries again
                log.exception("notification %s: delivery failed unexpectedly", c.id)
                continue
            made += 1
            log.log(logging.INFO if result.acknowledged else logging.WARNING,
                    "notification %s (%s) to merchant %s: %s -> %s", c.id, c.event,
                    c.merchant_id, result.error or "acknowledged", state)
    finally:
        if client is not None:
            client.close()
    return made


def deliver_one(ctx: Context, notification_id: str, *, operator: str) -> bool:
    """Deliver ``notification_id`` once now, as ``operator``'s manual re-send, whatever its
    state; False if someone else holds its claim (nothing was sent)."""
    c = _claim(ctx, n.c.id == notification_id, manual=True)
    if c is None:
        return False
    with _client(ctx) as client:
        result = _post(ctx, client, c)
    state = _record(ctx, c, result, operator)
    log.info("notification %s re-sent by %s: %s -> %s", c.id, operator,
             result.error or "acknowledged", state)
    return True
