"""What cards, top-ups and withdrawals share: record ids, the pending-row lock that makes
applying an answer happen once, partner accounts, and list cursors."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, and_, or_, select

from paycell.context import Context
from paycell.funding.cash_common import locking
from paycell.funding.errors import CursorInvalidError
from paycell.ledger import chart
from paycell.ledger.store import Account

R = TypeVar("R")


class AlreadyResolvedError(Exception):
    """Internal: the record is no longer pending (another worker applied an answer)."""


def record_id(prefix: str, subscriber_id: int, key: str | None, scope: str = "api") -> str:
    """A record's id: derived from the caller's Idempotency-Key, so that a request retried
    after a crash finds what its first attempt wrote; random without a key."""
    if key is None:
        return prefix + secrets.token_hex(10)
    digest = hashlib.sha256(f"{prefix}{subscriber_id}:{scope}:{key}".encode()).hexdigest()
    return prefix + digest[:20]


def lock_pending(conn: Connection, table: Table, record: str) -> Any:
    """The pending row, locked for this transaction; AlreadyResolvedError if it is not
    pending any more. Every answer is applied under this lock, so it is applied once."""
    row = conn.execute(locking(conn, select(table).where(table.c.id == record))).first()
    if row is None or row.state != "pending":
        raise AlreadyResolvedError(record)
    return row


def clearing_account(ctx: Context, bank: str) -> Account:
    """The bank's clearing account: money in flight to or from it."""
    return chart.system_account(ctx.ledger, chart.Code.BANK_CLEARING, bank)


# -- cursors: (created_at, id), newest first ---------------------------------------------------
def encode_cursor(kind: str, created_at: int, record: str) -> str:
    raw = f"{kind}:{created_at}:{record}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def page_filter(table: Table, kind: str, cursor: str | None) -> Any:
    """The WHERE clause for the page after ``cursor`` (None: the first page)."""
    if cursor is None:
        return and_(True)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raw = ""
    parts = raw.split(":")
    if len(parts) != 3 or parts[0] != kind or not parts[1].isdigit() or len(parts[1]) > 18:
        raise CursorInvalidError("the cursor is not one this list returned; "
                                 "start again without a cursor")
    at, record = int(parts[1]), parts[2]
    return or_(table.c.created_at < at, and_(table.c.created_at == at, table.c.id < record))


def subscriber_page(ctx: Context, table: Table, kind: str, subscriber_id: int,
                    cursor: str | None, limit: int, to_record: Callable[[Any], R],
                    ) -> tuple[list[R], str | None]:
    """One page of the subscriber's rows of ``table`` (top-ups, withdrawals), newest first,
    and the cursor of the next page (None on the last)."""
    stmt = (select(table).where(table.c.subscriber_id == subscriber_id,
                                page_filter(table, kind, cursor))
            .order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit + 1))
    with ctx.engine.connect() as conn:
        rows = [to_record(r) for r in conn.execute(stmt)]
    more = len(rows) > limit
    rows = rows[:limit]
    last: Any = rows[-1] if more else None
    return rows, encode_cursor(kind, last.created_at, last.id) if more else None

