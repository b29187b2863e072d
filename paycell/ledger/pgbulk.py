"""PostgreSQL's fast path for a batch: one statement per table, whatever the batch size.

Lookups use ``= ANY(array)`` (the statement text never changes, so the server plans it
once per connection) and writes ``unnest`` arrays into one multi-row INSERT or UPDATE.
Statements go straight to the driver (psycopg 3) inside the ledger's transaction. The
generic SQLAlchemy path in ``store.py`` stays the reference, and SQLite's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection

from paycell.ledger import model as m

_TRANSFER_COLS = ("seq, id, debit_account_id, credit_account_id, amount, ledger, code, flags,"
                  " pending_id, timeout, ref, timestamp, prev_hash, hash")


def ints(xs: Iterable[int | None]) -> str:
    """A PostgreSQL array literal of integers, built with one join (psycopg's list dumper
    walks the list in Python, element by element, which cost a fifth of a batch)."""
    values = list(xs)
    if None not in values:
        return "{" + ",".join([str(int(x)) for x in values if x is not None]) + "}"
    return "{" + ",".join("NULL" if x is None else str(int(x)) for x in values) + "}"


def texts(xs: Iterable[str | None]) -> str:
    """A PostgreSQL array literal of strings: every element quoted, \\ and " escaped."""
    return "{" + ",".join(
        "NULL" if x is None else '"' + x.replace("\\", "\\\\").replace('"', '\\"') + '"'
        for x in xs) + "}"


def _rows(conn: Connection, sql: str, params: tuple[Any, ...]) -> list[Any]:
    return list(conn.exec_driver_sql(sql, params))


def existing_transfers(conn: Connection, ids: list[str]) -> list[Any]:
    return _rows(conn, f"SELECT {_TRANSFER_COLS} FROM ledger_transfers WHERE id = ANY(%s::text[])",
                 (texts(ids),))


def lock_holds(conn: Connection, ids: list[str]) -> list[Any]:
    return _rows(conn, "SELECT transfer_id, debit_account_id, credit_account_id, amount, ledger,"
                 " status, expires_at, resolved_by FROM ledger_holds"
                 " WHERE transfer_id = ANY(%s::text[]) ORDER BY transfer_id FOR UPDATE",
                 (texts(ids),))


def lock_accounts(conn: Connection, ids: list[int]) -> list[Any]:
    return _rows(conn, "SELECT id, ledger, flags, debits_pending, debits_posted,"
                 " credits_pending, credits_posted FROM ledger_accounts"
                 " WHERE id = ANY(%s::bigint[]) ORDER BY id FOR UPDATE", (ints(ids),))


def read_accounts(conn: Connection, ids: list[int]) -> list[Any]:
    """Accounts without a lock: enough for those with no balance rule to check."""
    return _rows(conn, "SELECT id, ledger, flags, debits_pending, debits_posted,"
                 " credits_pending, credits_posted FROM ledger_accounts"
                 " WHERE id = ANY(%s::bigint[])", (ints(ids),))


def lock_ids(conn: Connection, ids: list[int]) -> None:
    """Lock accounts in id order just before writing them (the write phase's locks)."""
    _rows(conn, "SELECT id FROM ledger_accounts WHERE id = ANY(%s::bigint[])"
          " ORDER BY id FOR UPDATE", (ints(ids),))


def add_to_accounts(conn: Connection, deltas: Sequence[tuple[int, int, int, int, int]]) -> None:
    """Add (id, debits_pending, debits_posted, credits_pending, credits_posted) deltas."""
    conn.exec_driver_sql(
        "UPDATE ledger_accounts a SET debits_pending = a.debits_pending + v.dp,"
        " debits_posted = a.debits_posted + v.dpo,"
        " credits_pending = a.credits_pending + v.cp, credits_posted = a.credits_posted + v.cpo"
        " FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[])"
        " AS v(id, dp, dpo, cp, cpo) WHERE a.id = v.id",
        tuple(ints(d[i] for d in deltas) for i in range(5)))


def insert_holds(conn: Connection, hs: Sequence[m.HoldState]) -> None:
    conn.exec_driver_sql(
        "INSERT INTO ledger_holds (transfer_id, debit_account_id, credit_account_id, amount,"
        " ledger, status, expires_at, resolved_by) SELECT * FROM unnest(%s::text[],"
        " %s::bigint[], %s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::bigint[],"
        " %s::text[])",
        (texts(h.transfer_id for h in hs), ints(h.debit_account_id for h in hs),
         ints(h.credit_account_id for h in hs), ints(h.amount for h in hs),
         texts(h.ledger for h in hs), texts(h.status for h in hs),
         ints(h.expires_at for h in hs), texts(h.resolved_by for h in hs)))


def update_holds(conn: Connection, hs: Sequence[m.HoldState]) -> None:
    conn.exec_driver_sql(
        "UPDATE ledger_holds h SET status = v.st, resolved_by = v.rb"
        " FROM unnest(%s::text[], %s::text[], %s::text[]) AS v(tid, st, rb)"
        " WHERE h.transfer_id = v.tid",
        (texts(h.transfer_id for h in hs), texts(h.status for h in hs),
         texts(h.resolved_by for h in hs)))


def insert_transfers(conn: Connection, ts: Sequence[m.Transfer]) -> None:
    conn.exec_driver_sql(
        f"INSERT INTO ledger_transfers ({_TRANSFER_COLS}) SELECT * FROM unnest("
        "%s::bigint[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::text[],"
        " %s::int[], %s::int[], %s::text[], %s::int[], %s::text[], %s::bigint[], %s::text[],"
        " %s::text[])",
        (ints(t.seq for t in ts), texts(t.id for t in ts), ints(t.debit_account_id for t in ts),
         ints(t.credit_account_id for t in ts), ints(t.amount for t in ts),
         texts(t.ledger for t in ts), ints(t.code for t in ts), ints(t.flags for t in ts),
         texts(t.pending_id for t in ts), ints(t.timeout for t in ts),
         texts(t.ref for t in ts), ints(t.timestamp for t in ts),
         texts(t.prev_hash for t in ts), texts(t.hash for t in ts)))
