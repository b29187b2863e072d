"""Merchant notifications: write one in the caller's transaction, read them, re-send one.

The outbox row is written with the business change it announces (:func:`enqueue`), so a
notification exists if and only if the change committed; the worker job
(:func:`paycell.notifications.delivery.deliver_due`) delivers it afterwards.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, select

from paycell.context import Context
from paycell.db import reading
from paycell.errors import ConflictError, InvalidRequestError, NotFoundError
from paycell.funding import cash_common as cursors
from paycell.notifications.tables import notification_attempts, notifications

STATES = ("pending", "delivering", "delivered", "failed")
EVENT_MAX = 64
URL_MAX = 2048


class NotificationNotFoundError(NotFoundError):
    code = "notification_not_found"


class NotificationBusyError(ConflictError):
    """Someone (a worker or another operator) is delivering it right now."""

    code = "notification_delivery_in_progress"


class NotifyUrlInvalidError(InvalidRequestError):
    code = "notify_url_invalid"


@dataclass(frozen=True)
class Attempt:
    id: int
    attempted_at: int
    status_code: int | None
    error: str | None  # None when acknowledged; see delivery.py for the kinds
    acknowledged: bool
    latency_ms: int
    response_snippet: str | None
    manual: bool
    operator: str | None


@dataclass(frozen=True)
class Notification:
    id: str
    seq: int
    merchant_id: int
    event: str
    data: dict[str, Any]
    url: str
    state: str
    attempts: int
    next_attempt_at: int | None
    created_at: int
    delivered_at: int | None


@dataclass(frozen=True)
class NotificationDetail:
    notification: Notification
    attempt_log: tuple[Attempt, ...]


def _notification(r: Any) -> Notification:
    return Notification(r.id, r.seq, r.merchant_id, r.event, json.loads(r.payload), r.url,
                        r.state, r.attempts, r.next_attempt_at, r.created_at, r.delivered_at)


def _attempt(r: Any) -> Attempt:
    return Attempt(r.id, r.attempted_at, r.status_code, r.error, bool(r.acknowledged),
                   r.latency_ms, r.response_snippet, bool(r.manual), r.operator)


def check_notify_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL a notification can be POSTed to;
    :class:`NotifyUrlInvalidError` otherwise. Call it where merchants give the URL."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname
            or len(url) > URL_MAX or not url.isprintable() or " " in url):
        raise NotifyUrlInvalidError(
            f"a notify URL is an absolute http:// or https:// URL of at most {URL_MAX} "
            "characters")
    return url


def new_notification_id() -> str:
    return "ntf_" + secrets.token_hex(12)


def enqueue(conn: Connection, *, merchant_id: int, event: str, payload: dict[str, Any],
            url: str, now_us: int) -> str:
    """Write a notification in the caller's transaction ``conn``; return its id (``ntf_``).

    It is due at once: a worker delivers it after the caller commits (never before, and
    never if the caller rolls back). ``payload`` (JSON-serialisable) becomes the ``data`` of
    the delivered body. Raises :class:`NotifyUrlInvalidError` for a URL that is not
    absolute http(s), ValueError for an empty or over-long ``event``.
    """
    return enqueue_many(conn, [Outgoing(merchant_id, event, payload, url)], now_us)[0]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One notification for :func:`enqueue_many`."""

    merchant_id: int
    event: str
    payload: dict[str, Any]
    url: str


def enqueue_many(conn: Connection, items: Sequence[Outgoing], now_us: int) -> list[str]:
    """:func:`enqueue` for several notifications, written with one statement (a batch's)."""
    rows: list[dict[str, Any]] = []
    ids: list[str] = []
    for n in items:
        check_notify_url(n.url)
        if not n.event or len(n.event) > EVENT_MAX:
            raise ValueError(f"an event name is 1 to {EVENT_MAX} characters")
        ids.append(new_notification_id())
        rows.append(dict(
            id=ids[-1], merchant_id=n.merchant_id, event=n.event,
            payload=json.dumps(n.payload, ensure_ascii=False, separators=(",", ":")),
            url=n.url, state="pending", attempts=0, auto_attempts=0, next_attempt_at=now_us,
            created_at=now_us))
    if rows:
        conn.execute(notifications.insert(), rows)
    return ids


def get_notification(ctx: Context, notification_id: str, *,
                     merchant_id: int | None = None) -> NotificationDetail:
    """A notification and its attempt log, oldest attempt first. With ``merchant_id``, only
    if it is that merchant's (otherwise :class:`NotificationNotFoundError`, as for an
    unknown id)."""
    n = notifications
    stmt = select(n).where(n.c.id == notification_id)
    if merchant_id is not None:
        stmt = stmt.where(n.c.merchant_id == merchant_id)
    with reading(ctx.engine) as conn:
        row = conn.execute(stmt).first()
        if row is None:
            raise NotificationNotFoundError(f"no notification {notification_id[:60]}")
        attempts = conn.execute(select(notification_attempts).where(
            notification_attempts.c.notification_id == notification_id)
            .order_by(notification_attempts.c.id)).all()
    return NotificationDetail(_notification(row), tuple(_attempt(a) for a in attempts))


def encode_cursor(seq: int) -> str:
    return cursors.encode_cursor("ntf", seq)


def decode_cursor(cursor: str | None) -> int | None:
    """The ``seq`` a cursor of this list stands for; ``cursor_invalid`` otherwise."""
    return cursors.decode_cursor("ntf", cursor)


def list_notifications(ctx: Context, *, merchant_id: int | None = None,
                       state: str | None = None, cursor: str | None = None,
                       limit: int = 50) -> tuple[list[Notification], str | None]:
    """Notifications, newest first, optionally of one merchant and/or in one state; and the
    cursor of the next page (None on the last page)."""
    if state is not None and state not in STATES:
        raise InvalidRequestError(f"state is one of {', '.join(STATES)}")
    n = notifications
    stmt = select(n).order_by(n.c.seq.desc()).limit(limit + 1)
    if merchant_id is not None:
        stmt = stmt.where(n.c.merchant_id == merchant_id)
    if state is not None:
        stmt = stmt.where(n.c.state == state)
    before = decode_cursor(cursor)
    if before is not None:
        stmt = stmt.where(n.c.seq < before)
    with reading(ctx.engine) as conn:
        rows = [_notification(r) for r in conn.execute(stmt)]
    more = len(rows) > limit
    return rows[:limit], (encode_cursor(rows[limit - 1].seq) if more else None)


def resend(ctx: Context, notification_id: str, operator_name: str) -> NotificationDetail:
    """Deliver a notification once, now, whatever its state, logged as a manual attempt by
    ``operator_name``; return it with its attempt log.

    If the merchant acknowledges, it becomes ``delivered`` (also one that had been given
    up). If not, its state and retry schedule stay as they were. Raises
    :class:`NotificationNotFoundError`, or :class:`NotificationBusyError` while a worker or
    another operator is delivering it.
    """
    from paycell.notifications import delivery

    get_notification(ctx, notification_id)  # not found -> 404
    if not delivery.deliver_one(ctx, notification_id, operator=operator_name):
        raise NotificationBusyError("this notification is being delivered right now; "
                                    "look at its attempts in a moment")
    return get_notification(ctx, notification_id)
