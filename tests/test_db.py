"""Database plumbing: reads never queue behind a writer on SQLite."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, text

from paycell.db import reading


@pytest.mark.sqlite_only
def test_a_read_completes_while_a_writer_holds_the_lock(engine: Engine) -> None:
    got: list[int] = []
    writer_holds = threading.Event()
    reader_done = threading.Event()

    def writer() -> None:
        with engine.begin() as conn:  # BEGIN IMMEDIATE: takes the write lock
            conn.execute(text("INSERT INTO ledger_accounts (name, ledger, code, timestamp)"
                              " VALUES ('w', 'CNY', 100, 0)"))
            writer_holds.set()
            # Hold the lock until the reader has finished: if reads queued behind writers,
            # this would wait for its whole bound and the assertion below would fail.
            reader_done.wait(30)

    t = threading.Thread(target=writer)
    t.start()
    assert writer_holds.wait(30)
    with reading(engine) as conn:
        got.append(conn.execute(text("SELECT COUNT(*) FROM ledger_accounts")).scalar_one())
    reader_done.set()
    t.join()
    assert got == [0]  # the reader saw the last committed state, not the writer's row


@pytest.mark.sqlite_only
def test_sqlite_writers_hold_a_flock_for_exactly_their_transaction(engine: Engine) -> None:
    """Writers queue on ``<file>.writer`` (the kernel wakes the next one when the lock is
    let go, where SQLite's busy handler sleeps up to 100 ms between tries); every way a
    write transaction ends lets it go, and reads never take it."""
    import fcntl
    import os

    path = engine.url.database
    assert path and path != ":memory:"

    def held() -> bool:
        fd = os.open(f"{path}.writer", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    insert = text("INSERT INTO ledger_accounts (name, ledger, code, timestamp)"
                  " VALUES (:n, 'CNY', 100, 0)")
    seen = []
    with engine.begin() as conn:
        conn.execute(insert, {"n": "committed"})
        seen.append(held())
    seen.append(held())
    with pytest.raises(ZeroDivisionError), engine.begin() as conn:
        conn.execute(insert, {"n": "rolled back"})
        seen.append(held())
        1 / 0  # noqa: B018
    seen.append(held())
    with reading(engine) as conn:
        conn.execute(text("SELECT COUNT(*) FROM ledger_accounts")).scalar_one()
        seen.append(held())
    conn2 = engine.connect()
    conn2.execute(insert, {"n": "never committed"})
    seen.append(held())
    conn2.close()  # the pool's reset rolls it back
    seen.append(held())
    assert seen == [True, False, True, False, False, True, False]
    with engine.connect() as conn:
        names = conn.execute(text("SELECT name FROM ledger_accounts")).scalars().all()
    assert names == ["committed"]


@pytest.mark.sqlite_only
def test_a_thread_writing_on_two_connections_gets_sqlites_error_not_a_hang(
        engine: Engine) -> None:
    """The flock would make a thread that already writes on one connection wait on itself
    for ever; it goes to SQLite's busy handler instead, which gives up with an error."""
    from sqlalchemy.exc import OperationalError

    insert = text("INSERT INTO ledger_accounts (name, ledger, code, timestamp)"
                  " VALUES (:n, 'CNY', 100, 0)")
    with engine.begin() as first:
        first.execute(insert, {"n": "first"})
        with engine.connect() as second:
            second.connection.driver_connection.execute(  # type: ignore[union-attr]
                "PRAGMA busy_timeout=50")
            with pytest.raises(OperationalError, match="locked"):
                second.execute(insert, {"n": "second"})
    with engine.begin() as again:  # and the flock is free again for the next writer
        again.execute(insert, {"n": "third"})
    with engine.connect() as conn:
        names = conn.execute(text("SELECT name FROM ledger_accounts ORDER BY name"))
        assert names.scalars().all() == ["first", "third"]


@pytest.mark.postgres_only
def test_postgres_pool_hands_out_the_connection_returned_last(engine: Engine) -> None:
    """LIFO: under load one thread's transactions keep to one warm connection, whose
    statements the driver has prepared, instead of cycling through the whole pool."""
    pid = "SELECT pg_backend_pid()"
    a, b = engine.connect(), engine.connect()
    first, second = a.execute(text(pid)).scalar(), b.execute(text(pid)).scalar()
    a.close()
    b.close()
    # b went back last: the next checkout is b's connection, and the one after it too.
    for _ in range(3):
        with engine.connect() as c:
            assert c.execute(text(pid)).scalar() == second != first
