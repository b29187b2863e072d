"""Plumbing shared by the voucher, agent and P2P use cases: posting a transfer together with
the use case's own rows, row locks, and list cursors."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Table, literal_column
from sqlalchemy.dialects import postgresql, sqlite

from paycell.errors import InvalidRequestError
from paycell.ledger import Ledger, TransferRequest, TransferResult
from paycell.ledger import errors as le


class AlreadyAppliedError(Exception):
    """Internal: every transfer of the call existed already, so nothing new was written."""


def post_recorded(
    ledger: Ledger, requests: Sequence[TransferRequest], *,
    before: Callable[[Connection], None] | None = None,
    record: Callable[[Connection, list[TransferResult]], None] | None = None,
) -> list[TransferResult]:
    """Post ``requests`` and run ``record`` in the same transaction, all or nothing.

    ``before`` runs first (locks, business checks, the subscriber guards). If any request
    fails, its error is raised and nothing is kept: neither the money nor what ``before``
    wrote (a limit guard's usage, for instance). If every request had been applied before
    (a retry), :class:`AlreadyAppliedError` is raised, again keeping nothing, so a guard never
    counts a retried transfer twice: the caller reads what the first call recorded.
    """

    def hook(conn: Connection, results: list[TransferResult]) -> None:
        failed = [r.error for r in results if r.error is not None]
        if failed:
            culprit = next((x for x in failed if not isinstance(x, le.LinkedEventFailedError)),
                           failed[0])
            raise culprit
        if all(r.status == "exists" for r in results):
            raise AlreadyAppliedError
        if record is not None:
            record(conn, results)

    return ledger.post(requests, before=before, hook=hook)


def locking(conn: Connection, stmt: Any, *, read: bool = False) -> Any:
    """``stmt`` with FOR UPDATE (FOR SHARE if ``read``) on PostgreSQL. SQLite needs none:
    every transaction there starts with BEGIN IMMEDIATE and so holds the write lock."""
    if conn.dialect.name == "postgresql":
        return stmt.with_for_update(read=read)
    return stmt


def insert_ignore(conn: Connection, table: Table, **values: Any) -> bool:
    """INSERT the row unless its key exists (ON CONFLICT DO NOTHING on both databases);
    True if this call inserted it."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    # RETURNING, not rowcount: psycopg reports a row for an INSERT that DO NOTHING skipped.
    return conn.execute(dialect.insert(table).values(**values).on_conflict_do_nothing()
                        .returning(literal_column("1"))).first() is not None


class CursorInvalidError(InvalidRequestError):
    code = "cursor_invalid"


def encode_cursor(kind: str, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> int | None:
    """The row id a cursor of this list stands for; :class:`CursorInvalidError` otherwise."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raw = ""
    prefix, _, number = raw.partition(":")
    if prefix != kind or not number.isdigit() or len(number) > 18:
        raise CursorInvalidError("the cursor is not one this list returned; "
                                 "start again without a cursor")
    return int(number)
