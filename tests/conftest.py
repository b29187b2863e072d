"""Every test that touches the database runs on SQLite and on PostgreSQL.

Fixtures:
- ``db_url``: a fresh, migrated, empty database for one test, as a SQLAlchemy URL. Tests
  asking for it (directly or through ``engine``) run twice, with ids ``[sqlite]`` and
  ``[postgresql]``; mark a test ``postgres_only`` or ``sqlite_only`` to get one of them.
- ``engine``: ``make_engine(db_url)``, disposed after the test.
- ``pg_server``: the session's PostgreSQL server (``url``, ``url_for``, ``create_database``,
  ``drop_database``), started the first time a test needs it. With
  ``PAYCELL_TEST_DATABASE_URL`` set, the server at that URL is used instead.

``--db sqlite`` or ``--db postgresql`` runs the database tests on one backend only.
Each pytest-xdist worker has its own server and templates.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from paycell.db import make_engine, normalise_url
from paycell.devtools.pgserver import PostgresAdmin, ThrowawayPostgres
from paycell.migrate import upgrade

BACKENDS = ("sqlite", "postgresql")
ONLY_MARKS = {"postgres_only": "postgresql", "sqlite_only": "sqlite"}
# Database names must not collide between xdist workers, nor between concurrent runs
# sharing one server through PAYCELL_TEST_DATABASE_URL.
RUN_TAG = f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"
_db_numbers = itertools.count(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=("all", *BACKENDS),
        default="all",
        help="run the database tests on this backend only (default: all)",
    )


def _marked_backend(node: pytest.Item | pytest.Function | pytest.Metafunc) -> str | None:
    if isinstance(node, pytest.Metafunc):
        names = {m.name for m in node.definition.iter_markers()}
    else:
        names = {m.name for m in node.iter_markers()}
    found = [backend for mark, backend in ONLY_MARKS.items() if mark in names]
    if len(found) > 1:
        raise pytest.UsageError(f"{node}: postgres_only and sqlite_only exclude each other")
    return found[0] if found else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_backend" not in metafunc.fixturenames:
        return
    only = _marked_backend(metafunc)
    backends = [only] if only else list(BACKENDS)
    metafunc.parametrize("db_backend", backends, ids=backends, indirect=True)


def _item_backend(item: pytest.Item) -> str | None:
    """The backend an item needs, or None if it needs no database."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "db_backend" in callspec.params:
        return str(callspec.params["db_backend"])
    marked = _marked_backend(item)
    if marked:
        return marked
    if "pg_server" in getattr(item, "fixturenames", ()):
        return "postgresql"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    only = config.getoption("--db")
    if only == "all":
        return
    keep, drop = [], []
    for item in items:
        (drop if _item_backend(item) not in (None, only) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# -- PostgreSQL ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresAdmin]:
    """The PostgreSQL server of this session (of this xdist worker)."""
    external = os.environ.get("PAYCELL_TEST_DATABASE_URL")
    if external:
        yield PostgresAdmin(normalise_url(external))
        return
    server = ThrowawayPostgres(durable=False).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _pg_template(pg_server: PostgresAdmin) -> Iterator[str]:
    name = f"paycell_template_{RUN_TAG}"
    pg_server.drop_database(name)
    upgrade(pg_server.create_database(name))  # alembic disposes its engine: no connection left
    try:
        yield name
    finally:
        pg_server.drop_database(name)


# -- SQLite --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "paycell.db"
    upgrade(f"sqlite:///{path}")
    # Fold the WAL into the main file so that copying that one file copies everything.
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
    return path


# -- per test ------------------------------------------------------------------------------


@pytest.fixture
def db_backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql``; set by the parametrization in pytest_generate_tests."""
    return str(request.param)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, db_backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated, empty database for this test only."""
    if db_backend == "sqlite":
        target = tmp_path / "paycell.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), target)
        yield f"sqlite:///{target}"
        return
    server: PostgresAdmin = request.getfixturevalue("pg_server")
    template: str = request.getfixturevalue("_pg_template")
    name = f"t_{RUN_TAG}_{next(_db_numbers)}"
    url = server.create_database(name, template=template)
    try:
        yield url
    finally:
        server.drop_database(name)  # WITH (FORCE): a leaked connection does not block it


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    try:
        yield eng
    finally:
        eng.dispose()
