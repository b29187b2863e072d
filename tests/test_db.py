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
