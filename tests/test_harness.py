"""The test harness itself: fresh migrated databases on both backends, a clean server."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psycopg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from paycell.devtools.pgserver import ThrowawayPostgres
from paycell.migrate import alembic_config, current

_urls_seen: dict[str, str] = {}


def test_database_is_migrated_to_head(db_url: str) -> None:
    head = ScriptDirectory.from_config(alembic_config(db_url)).get_current_head()
    assert head is not None
    assert current(db_url) == head


@pytest.mark.parametrize("which", ["first", "second"])
def test_each_test_gets_its_own_empty_database(which: str, db_url: str, engine: Engine) -> None:
    # Both tests write the same unique name: whichever runs second fails if they share.
    assert db_url not in _urls_seen.values()
    _urls_seen[which] = db_url
    with engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM ledger_accounts")).scalar_one() == 0
        conn.execute(
            text(
                "INSERT INTO ledger_accounts (name, ledger, code, timestamp)"
                " VALUES ('harness:isolation', 'CNY', 1, 1)"
            )
        )
        assert conn.execute(text("SELECT count(*) FROM ledger_accounts")).scalar_one() == 1


def test_journal_refuses_update_and_delete(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO ledger_transfers (seq, id, debit_account_id, credit_account_id,"
                " amount, ledger, code, flags, timeout, timestamp, prev_hash, hash)"
                " VALUES (1, 't1', 1, 2, 100, 'CNY', 1, 0, 0, 1, :h, :h)"
            ),
            {"h": "0" * 64},
        )
    for statement in (
        "UPDATE ledger_transfers SET amount = 1 WHERE id = 't1'",
        "DELETE FROM ledger_transfers WHERE id = 't1'",
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT amount FROM ledger_transfers")).scalars().all() == [100]


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    """True if ``pid`` runs; a zombie waiting to be reaped by init counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.postgres_only
@pytest.mark.parametrize("durable", [False, True], ids=["fast", "durable"])
def test_throwaway_postgres_leaves_nothing_behind(durable: bool) -> None:
    with ThrowawayPostgres(durable=durable) as pg:
        base = pg.base_dir
        assert base is not None and base.exists()
        assert pg.pgbench.exists() and os.access(pg.pgbench, os.X_OK)
        postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
        processes = {postmaster, *_children(postmaster)}
        assert pg.watchdog_pid is not None
        processes.add(pg.watchdog_pid)
        with psycopg.connect(pg.libpq_url()) as conn:
            fsync = conn.execute("SHOW fsync").fetchone()
            buffers = conn.execute("SHOW shared_buffers").fetchone()
            full_pages = conn.execute("SHOW full_page_writes").fetchone()
        assert fsync == (("on",) if durable else ("off",))
        if durable:  # durable, and sized as a production server (docs/benchmarks.md)
            assert buffers == ("1GB",)
            assert full_pages == ("on",)
    assert not base.exists()
    deadline = time.monotonic() + 10
    while (left := {p for p in processes if _alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes left behind: {sorted(left)}"
