"""Many rows in one statement (paycell.bulk): PostgreSQL's arrays and SQLite's executemany
store and update exactly what the rows say, whatever the text holds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
)

from paycell.bulk import insert_many, select_any, update_many

meta = MetaData()
scratch = Table(
    "bulk_scratch", meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ref", String(40), nullable=False, unique=True),
    Column("amount", BigInteger, nullable=False),
    Column("note", Text),
    Column("flag", Boolean),
    Column("tries", Integer, nullable=False, server_default="0"),
)

# Text as people and attackers type it: quotes, backslashes, braces, commas, NULL-looking
# words, spaces at either end, other scripts. PostgreSQL cannot store NUL.
words = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)),
                max_size=30)
tricky = st.sampled_from(['"', "\\", "{", "}", ",", "NULL", "null", " a ", "", "'", "\\\"",
                          "{1,2}", "支付"])
notes = st.none() | words | tricky
row = st.fixed_dictionaries({
    "amount": st.integers(-(2**63), 2**63 - 1), "note": notes, "flag": st.none() | st.booleans(),
})


@pytest.fixture
def table(engine: Engine) -> Iterator[Table]:
    meta.create_all(engine)
    yield scratch
    meta.drop_all(engine)


def _stored(engine: Engine) -> list[tuple[object, ...]]:
    t = scratch
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(t.c.ref, t.c.amount, t.c.note, t.c.flag, t.c.tries).order_by(t.c.ref))]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(row, min_size=1, max_size=12), changes=st.lists(row, max_size=12),
       conflict=st.booleans())
def test_rows_round_trip(engine: Engine, table: Table, rows: list[dict[str, object]],
                         changes: list[dict[str, object]], conflict: bool) -> None:
    with engine.begin() as conn:
        conn.execute(table.delete())
    batch = [{"ref": f"r{i:03}", **r} for i, r in enumerate(rows)]
    with engine.begin() as conn:
        made = insert_many(conn, table, batch, returning=True)
    assert sorted((r.ref, r.amount, r.note, r.flag, r.tries) for r in made) == \
        [(b["ref"], b["amount"], b["note"], b["flag"], 0) for b in batch]
    assert len({r.id for r in made}) == len(batch)

    # Update some rows (keyed by ref, guarded by the amount they hold), add to the rest.
    updates = [(batch[i]["ref"], batch[i]["amount"], c["note"], c["flag"], i)
               for i, c in enumerate(changes[:len(batch)])]
    with engine.begin() as conn:
        update_many(conn, table, ("ref", "amount"), ("note", "flag", "tries"), updates)
        update_many(conn, table, ("ref", "amount"), ("note",),
                    [(b["ref"], b["amount"] ^ 1, "not me") for b in batch])  # guard fails
        if conflict:  # ON CONFLICT adds to what is there, as the usage counters do
            insert_many(conn, table, [{"ref": b["ref"], "amount": 0, "tries": 1} for b in batch],
                        suffix="ON CONFLICT (ref) DO UPDATE SET tries = bulk_scratch.tries"
                               " + excluded.tries")
    expect = {b["ref"]: (b["ref"], b["amount"], b["note"], b["flag"], 0) for b in batch}
    for ref, amount, note, flag, tries in updates:
        expect[ref] = (ref, amount, note, flag, tries)
    if conflict:
        expect = {k: (*v[:4], v[4] + 1) for k, v in expect.items()}
    assert _stored(engine) == [expect[k] for k in sorted(expect)]


def test_nothing_to_write_sends_nothing(engine: Engine, table: Table) -> None:
    with engine.begin() as conn:
        assert insert_many(conn, table, [], returning=True) == []
        update_many(conn, table, ("ref",), ("note",), [])
    assert _stored(engine) == []


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(notes_in=st.lists(notes, min_size=1, max_size=10),
       asked=st.lists(words | tricky, max_size=6), lock=st.booleans())
def test_select_any_finds_exactly_the_rows_asked_for(
        engine: Engine, table: Table, notes_in: list[str | None], asked: list[str],
        lock: bool) -> None:
    with engine.begin() as conn:
        conn.execute(table.delete())
        insert_many(conn, table, [{"ref": f"r{i:03}", "amount": i, "note": n}
                                  for i, n in enumerate(notes_in)])
    if notes_in[0] is not None:
        asked = [*asked, notes_in[0]]  # at least one row found, most of the time
    with engine.begin() as conn:
        got = select_any(conn, table, "note", asked, lock=lock)
    assert [r.amount for r in got] == [i for i, n in enumerate(notes_in) if n in set(asked)]


def test_select_any_by_pairs_of_columns(engine: Engine, table: Table) -> None:
    with engine.begin() as conn:
        insert_many(conn, table, [{"ref": f"r{i}", "amount": i % 3, "note": None}
                                  for i in range(9)])
    with engine.begin() as conn:
        got = select_any(conn, table, ("ref", "amount"),
                         [("r1", 1), ("r2", 1), ("r5", 2), ("r9", 0)], lock=True)
    assert [(r.ref, r.amount) for r in got] == [("r1", 1), ("r5", 2)]
