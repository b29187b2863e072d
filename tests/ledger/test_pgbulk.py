"""The driver's fast path (``ledger.pgbulk.driver_rows``) on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError, ProgrammingError

from paycell.ledger.pgbulk import driver_rows

pytestmark = pytest.mark.postgres_only


def test_rows_come_back_as_tuples_or_named_tuples_whatever_ran_before(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TEMP TABLE t (id bigint PRIMARY KEY, name text)"))
        assert driver_rows(conn, "INSERT INTO t VALUES (1, 'a'), (2, NULL)", ()) == []
        named = driver_rows(conn, "SELECT * FROM t ORDER BY id", (), named=True)
        assert [(r.id, r.name) for r in named] == [(1, "a"), (2, None)]
        assert driver_rows(conn, "SELECT name, id FROM t WHERE id = %s", (2,)) == [(None, 2)]
        again = driver_rows(conn, "SELECT id AS n FROM t WHERE id = %s", (1,), named=True)
        assert again[0].n == 1 and again == [(1,)]
        assert driver_rows(conn, "UPDATE t SET name = 'b' WHERE id = 2", ()) == []
        assert driver_rows(conn, "UPDATE t SET name = 'c' WHERE id = 2 RETURNING name",
                           ()) == [("c",)]


def test_a_failed_statement_raises_as_sqlalchemy_would_and_the_next_one_runs(
        engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE u (id bigint PRIMARY KEY)"))
        driver_rows(conn, "INSERT INTO u VALUES (1)", ())
    with pytest.raises(IntegrityError), engine.begin() as conn:
        driver_rows(conn, "INSERT INTO u VALUES (1)", ())
    with pytest.raises(ProgrammingError), engine.begin() as conn:
        driver_rows(conn, "SELECT no_such_column FROM u", ())
    with engine.begin() as conn:
        assert driver_rows(conn, "SELECT count(*) FROM u", ()) == [(1,)]


def test_each_pooled_connection_reads_its_own_results(engine: Engine) -> None:
    with engine.connect() as a, engine.connect() as b:
        assert driver_rows(a, "SELECT pg_backend_pid()", ()) != \
            driver_rows(b, "SELECT pg_backend_pid()", ())
        assert driver_rows(a, "SELECT 'a'", ()) == [("a",)]
        assert driver_rows(b, "SELECT 'b'", ()) == [("b",)]


def test_a_connection_the_pool_replaced_gets_a_working_cursor(engine: Engine) -> None:
    with engine.connect() as conn:
        assert driver_rows(conn, "SELECT 1", ()) == [(1,)]
        conn.invalidate()  # the driver connection is closed; the next use opens another
        assert driver_rows(conn, "SELECT 2", ()) == [(2,)]
