"""A batch's rows in one statement per table, on PostgreSQL.

SQLAlchemy's executemany runs its statement once per row on psycopg: one execution on the
server and one round of the driver's Python per row. A batch of payments writes several
tables a row per payment, and those executions were most of the statements the server ran
(``pg_stat_statements``: 9,190 usage upserts in 12 s). Here PostgreSQL gets the rows as one
array per column, ``unnest``ed by one statement whose text does not change with the number
of rows, so the server plans it once per connection: :func:`insert_many`,
:func:`update_many`, and for reads and locks :func:`select_any` (``= ANY`` of an array
instead of an ``IN`` list, whose text changes with its length). Arrays are sent as literals
built with one ``join`` (``ledger.pgbulk``): psycopg's list dumper walks them in Python.
The statements go to the driver's cursor in the caller's transaction (:func:`select_rows`
too): SQLAlchemy's set-up of a result cost more than these statements themselves.

Elsewhere (SQLite) the same helpers run SQLAlchemy's executemany and ``IN``, which stay the
reference: the tests run both. Only integer, text and boolean columns take the array path;
a statement naming a column of any other type takes the generic one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Boolean,
    Connection,
    Integer,
    Select,
    String,
    Table,
    bindparam,
    select,
    text,
    tuple_,
    update,
)

from paycell.ledger.pgbulk import driver_rows, ints, texts


def _bools(xs: Sequence[Any]) -> str:
    return "{" + ",".join("NULL" if x is None else ("t" if x else "f") for x in xs) + "}"


_CASTS: dict[tuple[str, str], str] = {}  # (table, column) -> PostgreSQL array type


def _array(conn: Connection, table: Table, name: str, values: Sequence[Any]
           ) -> tuple[str, str] | None:
    """(cast, literal) of one column's values, or None if its type has no array path."""
    kind = table.c[name].type
    cast = _CASTS.get((table.name, name))
    if cast is None:  # compiled once per column: every batch runs these
        cast = _CASTS[(table.name, name)] = f"{kind.compile(dialect=conn.dialect)}[]"
    if isinstance(kind, Boolean):
        return cast, _bools(values)
    if isinstance(kind, Integer):
        return cast, ints(values)
    if isinstance(kind, String):  # Text is a String
        return cast, texts(values)
    return None


def _arrays(conn: Connection, table: Table, names: Sequence[str],
            columns: Sequence[Sequence[Any]]) -> tuple[list[str], list[str]] | None:
    casts, literals = [], []
    for name, values in zip(names, columns, strict=True):
        got = _array(conn, table, name, values)
        if got is None:
            return None
        casts.append(got[0])
        literals.append(got[1])
    return casts, literals


def insert_many(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *,
                returning: bool = False, suffix: str = "") -> list[Any]:
    """INSERT ``rows`` (dicts with the same keys). ``suffix`` is SQL both forms end with
    (an ON CONFLICT clause; together with ``returning`` on PostgreSQL only). With
    ``returning``, the inserted rows (every column, in no particular order: named tuples
    on PostgreSQL, SQLAlchemy rows elsewhere); otherwise []."""
    if not rows:
        return []
    names = list(rows[0])
    q = conn.dialect.identifier_preparer.quote
    cols = ", ".join(q(n) for n in names)
    if conn.dialect.name == "postgresql":
        got = _arrays(conn, table, names, [[r[n] for r in rows] for n in names])
        if got is not None:
            casts, literals = got
            sql = (f"INSERT INTO {q(table.name)} ({cols}) SELECT * FROM unnest("
                   + ", ".join(f"%s::{c}" for c in casts) + f") {suffix}"
                   + (" RETURNING *" if returning else ""))
            return driver_rows(conn, sql, tuple(literals), named=True)
    if suffix and returning:  # an executemany of text returns no rows
        raise ValueError("insert_many: RETURNING with a suffix is for PostgreSQL only")
    if suffix:
        stmt: Any = text(f"INSERT INTO {q(table.name)} ({cols}) VALUES ("
                         + ", ".join(f":{n}" for n in names) + f") {suffix}")
    else:
        stmt = table.insert().returning(*table.c) if returning else table.insert()
    if returning:  # executemany with RETURNING: SQLAlchemy's insertmanyvalues
        return list(conn.execute(stmt, list(rows)))
    conn.execute(stmt, list(rows))
    return []


def update_many(conn: Connection, table: Table, where: Sequence[str], values: Sequence[str],
                rows: Sequence[Sequence[Any]]) -> None:
    """For each row ``(*where values, *new values)``: UPDATE the table's rows whose columns
    ``where`` equal the first values, setting the columns ``values`` to the rest. No two
    rows may have the same where values (PostgreSQL would apply only one of them)."""
    if not rows:
        return
    names = [*where, *values]
    if conn.dialect.name == "postgresql":
        got = _arrays(conn, table, names, list(zip(*rows, strict=True)))
        if got is not None:
            casts, literals = got
            q = conn.dialect.identifier_preparer.quote
            alias = [f"v{i}" for i in range(len(names))]
            pairs = [f"{q(n)} = u.{a}" for n, a in zip(names, alias, strict=True)]
            sql = (f"UPDATE {q(table.name)} AS t SET {', '.join(pairs[len(where):])}"
                   " FROM unnest(" + ", ".join(f"%s::{c}" for c in casts)
                   + f") AS u({', '.join(alias)}) WHERE "
                   + " AND ".join("t." + p for p in pairs[:len(where)]))
            driver_rows(conn, sql, tuple(literals))
            return
    stmt = update(table).where(*[table.c[n] == bindparam(f"w_{n}") for n in where]).values(
        {n: bindparam(f"v_{n}") for n in values})
    conn.execute(stmt, [{**{f"w_{n}": v for n, v in zip(where, r[:len(where)], strict=True)},
                         **{f"v_{n}": v for n, v in zip(values, r[len(where):], strict=True)}}
                        for r in rows])


def select_any(conn: Connection, table: Table, column: str | tuple[str, ...],
               values: Iterable[Any], *, lock: bool = False) -> list[Any]:
    """The table's rows whose ``column`` is one of ``values`` (or whose columns, a tuple
    of names, are one of the tuples ``values``), in id order; with ``lock``, locked for the
    transaction (FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE holds everything
    already). On PostgreSQL one text for any number of values (arrays), read on the
    driver's cursor as named tuples."""
    wanted = sorted(set(values))
    if not wanted:
        return []
    names = (column,) if isinstance(column, str) else column
    if conn.dialect.name == "postgresql":
        got = _arrays(conn, table, names, [wanted] if isinstance(column, str)
                      else list(zip(*wanted, strict=True)))
        if got is not None:
            q = conn.dialect.identifier_preparer.quote
            arrays = ", ".join(f"%s::{c}" for c in got[0])
            match = (f"{q(column)} = ANY({arrays})" if isinstance(column, str) else
                     f"({', '.join(q(n) for n in names)}) IN (SELECT * FROM unnest({arrays}))")
            sql = (f"SELECT * FROM {q(table.name)} WHERE {match} ORDER BY id"
                   + (" FOR UPDATE" if lock else ""))
            return driver_rows(conn, sql, tuple(got[1]), named=True)
    cond = (table.c[column].in_(wanted) if isinstance(column, str)
            else tuple_(*[table.c[n] for n in names]).in_(wanted))
    return list(conn.execute(select(table).where(cond).order_by(table.c.id)))


_COMPILED: dict[Any, str] = {}


def select_rows(conn: Connection, stmt: Select[Any], params: Mapping[str, Any]) -> list[Any]:
    """A SELECT built once at import, run with ``params``. On PostgreSQL on the driver's
    cursor (named tuples), its text compiled once per process: SQLAlchemy's execution
    machinery cost more than the query on the hot paths (a session lookup per request)."""
    if conn.dialect.name != "postgresql":
        return list(conn.execute(stmt, params))
    sql = _COMPILED.get(stmt)
    if sql is None:
        sql = _COMPILED[stmt] = str(stmt.compile(dialect=conn.dialect))
    return driver_rows(conn, sql, params, named=True)
