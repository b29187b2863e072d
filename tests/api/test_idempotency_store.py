"""A batch's Idempotency-Key answers: stored onto the rows its claims made, replayed after,
and on PostgreSQL found through the key's index whatever the planner's statistics say."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from paycell.api import idempotency as idem
from paycell.clock import ManualClock

BODY = '{"id": "t1", "note": "quotes \\" and backslashes \\\\ and {braces}, kept"}'


def _claims(n: int) -> list[idem.Claim]:
    return [idem.Claim("subscriber:1", f"key-{i}", f"{i:064x}", "/v1/wallet/transfers", 201)
            for i in range(n)]


def test_answers_are_stored_and_replayed(engine: Engine) -> None:
    clock = ManualClock()
    claims = _claims(3)
    with engine.begin() as conn:
        keyed = idem.Keyed(clock, claims)
        assert keyed.ahead(conn) == [None, None, None]  # all three claimed: run them
        keyed.store(conn, [(0, idem.Reply(201, BODY)), (2, idem.Reply(409, '{"code": "x"}'))])
    t = idem.idempotency_keys
    with engine.connect() as conn:
        rows = {r.key: r for r in conn.execute(select(t))}
    assert (rows["key-0"].state, rows["key-0"].status_code, rows["key-0"].response) == (
        "done", 201, BODY)
    assert (rows["key-2"].state, rows["key-2"].status_code) == ("done", 409)
    assert rows["key-1"].state == "started" and rows["key-1"].response is None
    assert rows["key-0"].request_hash == claims[0].digest  # the claim's own, untouched

    with engine.begin() as conn:  # the same keys again: the stored answers come back
        again = idem.Keyed(clock, claims[::2]).ahead(conn)
    assert [(r.status, r.body, r.replayed) for r in again if r is not None] == [
        (201, BODY, True), (409, '{"code": "x"}', True)]


@pytest.mark.postgres_only
def test_answers_find_their_rows_by_the_index(engine: Engine) -> None:
    """Even planned on an empty table, the statement reaches the rows through the key's
    index (the arbiter of ON CONFLICT), never by scanning the table."""
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        plan = "\n".join(r[0] for r in raw.execute(
            "EXPLAIN " + idem._STORE_PG,
            (1, 1, "{a}", "{b}", "{h}", "{201}", "{x}")).fetchall())
    assert "Conflict Arbiter Indexes: pk_idempotency_keys" in plan, plan
    assert "Seq Scan on idempotency_keys" not in plan, plan
