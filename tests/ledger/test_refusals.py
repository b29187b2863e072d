"""Every way the ledger refuses a transfer: a stable code, and nothing written."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from helpers import post_hold, snapshot, tx, void_hold
from sqlalchemy import Engine

from paycell.clock import ManualClock
from paycell.ledger import Ledger, TransferFlags, TransferRequest
from paycell.ledger.chart import Code, open_account, system_account

PENDING, LINKED = TransferFlags.PENDING, TransferFlags.LINKED


@dataclass
class World:
    ledger: Ledger
    clock: ManualClock
    src: int
    a: int
    b: int
    usd: int


@pytest.fixture
def world(engine: Engine) -> World:
    clock = ManualClock()
    ledger = Ledger(engine, clock)
    src = system_account(ledger, Code.BANK_CLEARING, "icbc").id
    a = open_account(ledger, "wallet:a", Code.WALLET).id
    b = open_account(ledger, "wallet:b", Code.WALLET).id
    usd = open_account(ledger, "wallet:usd", Code.WALLET, currency="USD").id
    ledger.post([tx("fund-a", src, a, 100_00), tx("hold-1", a, b, 10_00, PENDING, timeout=60),
                 tx("hold-2", a, b, 5_00, PENDING), tx("hold-3", a, b, 1_00, PENDING)])
    ledger.post([post_hold("post-2", "hold-2"), void_hold("void-3", "hold-3")])
    return World(ledger, clock, src, a, b, usd)


def _closed(w: World) -> list[TransferRequest]:
    c = open_account(w.ledger, "wallet:closed", Code.WALLET).id
    w.ledger.close_account(c)
    return [tx("t", w.src, c, 1)]


def _expired(w: World) -> list[TransferRequest]:
    w.clock.advance(61)
    return [post_hold("t", "hold-1")]


CASES: dict[str, Callable[[World], list[TransferRequest]]] = {
    "transfer_id_invalid": lambda w: [tx("", w.a, w.b, 1)],
    "flags_invalid": lambda w: [tx("t", w.a, w.b, 1, PENDING | TransferFlags.POST_PENDING)],
    "amount_must_be_positive": lambda w: [tx("t", w.a, w.b, 0)],
    "accounts_must_be_different": lambda w: [tx("t", w.a, w.a, 1)],
    "timeout_invalid": lambda w: [tx("t", w.a, w.b, 1, timeout=5)],
    "account_not_found": lambda w: [tx("t", w.a, 999_999, 1)],
    "ledger_mismatch": lambda w: [tx("t", w.a, w.usd, 1)],
    "account_closed": _closed,
    "overdraft": lambda w: [tx("t", w.a, w.b, 85_01)],  # 100 - 5 posted - 10 held = 85
    "pending_transfer_not_found": lambda w: [post_hold("t", "no-such-hold")],
    "pending_already_posted": lambda w: [void_hold("t", "hold-2")],
    "pending_already_voided": lambda w: [post_hold("t", "hold-3")],
    "pending_expired": _expired,
    "post_exceeds_pending": lambda w: [post_hold("t", "hold-1", 10_01)],
    "pending_transfer_mismatch": lambda w: [TransferRequest(
        "t", debit_account_id=w.b, flags=TransferFlags.POST_PENDING, pending_id="hold-1")],
    "transfer_id_conflict": lambda w: [tx("fund-a", w.src, w.a, 99_00)],
    "linked_event_chain_open": lambda w: [tx("t", w.src, w.a, 1, LINKED)],
    "linked_event_failed": lambda w: [tx("t1", w.src, w.a, 1, LINKED), tx("t2", w.a, w.a, 1)],
}


@pytest.mark.parametrize("code", sorted(CASES))
def test_refusal_has_a_stable_code_and_writes_nothing(
    code: str, world: World, engine: Engine,
) -> None:
    requests = CASES[code](world)
    before = snapshot(engine)
    results = world.ledger.post(requests)
    assert snapshot(engine) == before
    codes = {r.error.code for r in results if r.error is not None}
    assert all(not r.ok for r in results)
    assert code in codes
    for r in results:
        assert r.error is not None and r.error.message  # a sentence a person can act on


def test_conflict_names_the_differing_field(world: World) -> None:
    r = world.ledger.post([tx("fund-a", world.src, world.a, 99_00)])[0]
    assert r.error is not None and r.error.detail == {"field": "amount"}
    r = world.ledger.post([tx("fund-a", world.src, world.b, 100_00)])[0]
    assert r.error is not None and r.error.detail == {"field": "credit_account_id"}
    r = world.ledger.post([tx("fund-a", world.src, world.a, 100_00, code=7)])[0]
    assert r.error is not None and r.error.detail == {"field": "code"}


def test_retry_with_the_same_body_returns_the_original_and_moves_nothing(
    world: World, engine: Engine,
) -> None:
    before = snapshot(engine)
    original = world.ledger.transfer("fund-a")
    again = world.ledger.post([tx("fund-a", world.src, world.a, 100_00)])[0]
    assert again.status == "exists" and again.transfer == original
    # A post of a hold retried without repeating the amount is the same request.
    again = world.ledger.post([post_hold("post-2", "hold-2")])[0]
    assert again.status == "exists"
    assert snapshot(engine) == before


def test_one_failure_in_a_batch_leaves_the_others(world: World) -> None:
    results = world.ledger.post([tx("ok-1", world.src, world.a, 1), tx("bad", world.a, world.a, 1),
                                 tx("ok-2", world.src, world.b, 2)])
    assert [r.status for r in results] == ["created", "failed", "created"]


def test_an_account_with_holds_cannot_be_closed(world: World) -> None:
    from paycell.ledger.errors import AccountHasHoldsError

    with pytest.raises(AccountHasHoldsError):
        world.ledger.close_account(world.a)


def test_account_creation_is_idempotent_by_name(world: World) -> None:
    from paycell.ledger.errors import AccountExistsError

    again = open_account(world.ledger, "wallet:a", Code.WALLET)
    assert again.id == world.a
    with pytest.raises(AccountExistsError):
        open_account(world.ledger, "wallet:a", Code.MERCHANT_PAYABLE)


def test_post_of_the_whole_hold_does_not_match_an_earlier_partial_post(world: World) -> None:
    """Found by the state machine: omitting the amount means the whole hold, not 'any'."""
    world.ledger.post_one(tx("h", world.a, world.b, 2_00, PENDING))
    world.ledger.post_one(post_hold("p", "h", 1_00))
    again = world.ledger.post([post_hold("p", "h")])[0]
    assert again.error is not None and again.error.code == "transfer_id_conflict"
    assert again.error.detail == {"field": "amount"}
    assert world.ledger.post([post_hold("p", "h", 1_00)])[0].status == "exists"


@pytest.mark.parametrize("tid", ['q"uote', "back\\slash", "com,ma", "{brace}", "NULL", "null",
                                 "空格 和 unicode ✓", "'single'", "semi;colon--", " lead"])
def test_awkward_ids_and_refs_round_trip(world: World, tid: str) -> None:
    """Ids are the caller's own strings: PostgreSQL's array fast path must quote them."""
    t = world.ledger.post_one(tx(tid, world.src, world.a, 1, ref=tid))
    assert (t.id, t.ref) == (tid, tid)
    world.ledger.post_one(tx(tid + ":h", world.src, world.a, 1, PENDING))
    world.ledger.post_one(post_hold(tid + ":p", tid + ":h"))
    stored = world.ledger.transfer(tid)
    assert stored is not None and (stored.id, stored.ref) == (tid, tid)
    assert world.ledger.post([tx(tid, world.src, world.a, 1, ref=tid)])[0].status == "exists"


def test_nul_bytes_are_refused(world: World) -> None:
    for req in (tx("a\x00b", world.src, world.a, 1), tx("ok", world.src, world.a, 1, ref="\x00")):
        r = world.ledger.post([req])[0]
        assert r.error is not None and r.error.code == "transfer_id_invalid"


def test_a_retried_post_with_amount_zero_is_refused_not_matched(world: World) -> None:
    """A post that left its amount out (the whole hold) is not "the same" as one asking
    for 0 fen: 0 is an invalid amount, refused before the retry is compared (found by the
    model-based test)."""
    again = TransferRequest("post-2", flags=TransferFlags.POST_PENDING, pending_id="hold-2",
                            amount=0, ledger=None)
    result = world.ledger.post([again])[0]
    assert result.status == "failed" and result.error is not None
    assert result.error.code == "amount_must_be_positive"


def test_ids_and_refs_with_tabs_newlines_and_backslashes_are_stored_as_given(
        world: World) -> None:
    """PostgreSQL's journal rows go in by COPY, whose text format gives tab, newline and
    backslash a meaning: free text in an id or a ref must come back byte for byte, and the
    chain must still verify."""
    from paycell.ledger.audit import audit

    tricky = "a\tb\nc\\d\re \\N"
    ledger = world.ledger
    made = ledger.post([tx(f"id {tricky}", world.src, world.a, 7, ref=tricky),
                        tx("plain", world.src, world.a, 1, ref=None)])
    assert [r.status for r in made] == ["created", "created"]
    stored = ledger.transfer(f"id {tricky}")
    assert stored is not None and stored.ref == tricky and stored.id == f"id {tricky}"
    assert ledger.transfer("plain").ref is None  # type: ignore[union-attr]
    again = ledger.post([tx(f"id {tricky}", world.src, world.a, 7, ref=tricky)])[0]
    assert again.status == "exists"
    assert audit(ledger.engine).ok
