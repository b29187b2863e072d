"""Benchmarks: ``paycell bench ledger``, ``paycell bench http`` and others (see
docs/benchmarks.md).

This module stays light (no database imports) so that ``paycell --help`` stays quick.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from paycell.bench.ledger import LevelRecord


class Reporter:
    """What a benchmark tells its caller while it runs; the CLI draws it with rich."""

    def step(self, text: str) -> None:
        """A set-up step starts (migrating, creating wallets, running pgbench...)."""

    def setup_progress(self, done: int, total: int) -> None:
        """Wallets created or funded so far."""

    def level_start(self, database: str, concurrency: int, total_s: float) -> None:
        """A concurrency level starts: warm-up plus measurement last ``total_s``."""

    def level_tick(self, elapsed_s: float, measuring: bool, payments: int) -> None:
        """About four times a second during a level; ``payments`` counted so far."""

    def level_end(self, record: LevelRecord) -> None:
        """A level is done."""


def database_urls(databases: list[str], name: str, work: Path) -> Iterator[tuple[str, str]]:
    """``(database, url)`` for each of ``databases``: a file under ``work`` for SQLite, a
    fresh database ``name`` on one durable throwaway PostgreSQL (started at the first
    PostgreSQL entry, stopped when the iteration ends)."""
    server = None
    try:
        for db in databases:
            if db == "sqlite":
                yield db, f"sqlite:///{work / (name + '.db')}"
                continue
            if server is None:
                from paycell.devtools.pgserver import ThrowawayPostgres

                server = ThrowawayPostgres(durable=True).start()
            server.drop_database(name)
            yield db, server.create_database(name)
    finally:
        if server is not None:
            server.stop()
