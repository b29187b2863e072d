"""Engines for the two supported databases, SQLite (default) and PostgreSQL.

Both are configured for durable commits: SQLite in WAL mode with ``synchronous=FULL``,
PostgreSQL with its defaults (``synchronous_commit=on``). On SQLite every transaction starts
with ``BEGIN IMMEDIATE`` so that writers queue for the lock instead of failing half-way;
connections from :func:`reading` start a deferred one and never wait for writers.

SQLite's own wait for the write lock polls: its busy handler sleeps 1, 2, 5 ... up to 100
ms between tries, so under load a writer slept on long after the lock was free (the HTTP
benchmark's p99 on SQLite was 2 s). Writers to a database file therefore first take an
exclusive ``flock`` on ``<file>.writer``, each connection on a descriptor of its own: the
kernel wakes the next writer the moment the last one commits or rolls back, and frees the
lock of a process that dies.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": 60, "check_same_thread": False, "isolation_level": None},
            pool_size=kwargs.pop("pool_size", 8),
            max_overflow=kwargs.pop("max_overflow", 32),
            **kwargs,
        )
        _configure_sqlite(engine, db if db and db != ":memory:" and
                          not db.startswith("file:") else None)
        return engine
    engine = create_engine(
        url,
        # The connection returned last goes out first: a desk's transactions keep to one
        # warm connection, whose hot statements the driver has prepared after five runs,
        # instead of cycling through the pool (FIFO) and warming every one of them.
        pool_use_lifo=kwargs.pop("pool_use_lifo", True),
        pool_size=kwargs.pop("pool_size", 10),
        max_overflow=kwargs.pop("max_overflow", 40),
        **kwargs,
    )
    _ping_when_idle(engine)
    return engine


# A pooled PostgreSQL connection idle for longer than this is pinged before use.
IDLE_PING_S = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's ``pool_pre_ping``, for connections that sat idle in the pool.

    A ping is a round trip, and under load connections go out again within milliseconds
    (the pre-ping cost every request a round trip). A connection idle for more than
    ``IDLE_PING_S`` (the server may have restarted meanwhile) is pinged; a dead one is
    replaced before the caller sees it. A server that restarts under load is found by
    the statement that fails: SQLAlchemy then drops every pooled connection, and the API
    answers 503 ``database_unavailable`` (the client retries with its Idempotency-Key).
    """
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["paycell_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("paycell_idle_since")
        if since is None or time.monotonic() - since <= IDLE_PING_S:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"pooled connection is dead: {exc}") from exc


_WRITER_FD = "paycell_writer_fd"  # the connection's descriptor of <file>.writer
_WRITING = "paycell_writing"  # (the holding thread's set, path) while holding the flock


def _configure_sqlite(engine: Engine, path: str | None) -> None:
    """Pragmas on connect; ``BEGIN IMMEDIATE`` for writers, after the writers' flock when
    the database is a file (``path``); the flock is let go after the COMMIT or ROLLBACK."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()
        if path is not None:
            record.info[_WRITER_FD] = os.open(f"{path}.writer", os.O_RDWR | os.O_CREAT, 0o600)

    @event.listens_for(engine, "close")
    def _on_close(_dbapi_conn: Any, record: Any) -> None:
        fd = record.info.pop(_WRITER_FD, None)
        held = record.info.pop(_WRITING, None)
        if held is not None:
            held[0].discard(held[1])
        if fd is not None:
            os.close(fd)  # closing the descriptor lets go of its flock too

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the lock up front; reads marked by reading() do not, so in WAL mode
        # they never wait behind a writer.
        if conn.get_execution_options().get("paycell_read"):
            conn.exec_driver_sql("BEGIN")
            return
        info = conn.connection.info
        fd = info.get(_WRITER_FD)
        mine = _held_here()
        # A thread that holds the flock on another connection would wait on itself for
        # ever: it goes without, to SQLite's busy handler (an error after busy_timeout).
        if path is not None and fd is not None and not info.get(_WRITING) and path not in mine:
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocks without the GIL until the last writer ends
            mine.add(path)
            info[_WRITING] = (mine, path)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _let_go(conn.connection)
            raise

    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_conn: Any) -> None:
        try:
            commit(dbapi_conn)
        finally:
            _let_go(dbapi_conn)

    def do_rollback(dbapi_conn: Any) -> None:
        try:
            rollback(dbapi_conn)
        finally:
            _let_go(dbapi_conn)

    setattr(dialect, "do_commit", do_commit)  # noqa: B010 (an instance's own, not the class's)
    setattr(dialect, "do_rollback", do_rollback)  # noqa: B010


def _let_go(pooled: Any) -> None:
    """Release the writers' flock if this pooled connection holds it."""
    try:
        info = pooled.info
    except (AttributeError, NotImplementedError):  # the dialect's first-connect probe
        return
    held = info.pop(_WRITING, None)
    if held is not None:
        mine, path = held
        mine.discard(path)
        fcntl.flock(info[_WRITER_FD], fcntl.LOCK_UN)


_THREAD = threading.local()


def _held_here() -> set[str]:
    """The database files whose writers' flock this thread holds."""
    mine: set[str] | None = getattr(_THREAD, "writing", None)
    if mine is None:
        mine = _THREAD.writing = set()
    return mine


def reading(engine: Engine) -> Connection:
    """A connection for reads only: on SQLite it starts a deferred transaction, so it does
    not queue for the write lock. Use it as a context manager; never write through it."""
    return engine.connect().execution_options(paycell_read=True)


def reading_each(engine: Engine) -> Connection:
    """:func:`reading` for reads that need no snapshot in common. On PostgreSQL each
    statement runs on its own (autocommit): no BEGIN and ROLLBACK round trips around them.
    A READ COMMITTED transaction gives each statement its own snapshot anyway."""
    conn = reading(engine)
    if engine.dialect.name == "postgresql":
        conn.execution_options(isolation_level="AUTOCOMMIT")
    return conn


def engine_from_settings() -> Engine:
    from paycell.config import get_settings

    return make_engine(get_settings().database_url)
