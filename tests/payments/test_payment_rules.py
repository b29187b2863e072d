"""The order state machine and refund arithmetic, as pure rules (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paycell.payments import rules
from paycell.payments.errors import (
    EscrowPartialRefundError,
    OrderStateError,
    RefundExceedsPaidError,
)

ACTIONS = sorted({a for moves in rules.TRANSITIONS.values() for a in moves})


def test_every_target_is_a_state_and_final_states_are_closed() -> None:
    for state, moves in rules.TRANSITIONS.items():
        assert state in rules.STATES
        assert set(moves.values()) <= set(rules.STATES)
    assert {rules.CLOSED, rules.REFUNDED} == rules.FINAL_STATES
    assert rules.WAITING not in rules.PAID_STATES


def test_refused_moves_say_state_and_action() -> None:
    with pytest.raises(OrderStateError) as err:
        rules.next_state(rules.CLOSED, "pay")
    assert err.value.detail == {"state": "closed", "action": "pay"}
    assert "closed cannot pay" in err.value.message


@given(st.lists(st.sampled_from(ACTIONS), max_size=30))
def test_walks_follow_the_table(actions: list[str]) -> None:
    """Any sequence of actions either follows the table or is refused without moving."""
    state = rules.WAITING
    for action in actions:
        allowed = rules.TRANSITIONS[state].get(action)
        if allowed is None:
            with pytest.raises(OrderStateError):
                rules.next_state(state, action)
        else:
            state = rules.next_state(state, action)
            assert state == allowed
    assert state in rules.STATES


@given(amount=st.integers(1, 10**9), refunds=st.lists(st.integers(1, 10**9), max_size=12))
def test_refunds_never_exceed_what_was_paid(amount: int, refunds: list[int]) -> None:
    state, refunded = rules.PAID, 0
    for r in refunds:
        try:
            action = rules.refund_action(state, amount, refunded, r)
        except (RefundExceedsPaidError, OrderStateError) as exc:
            if isinstance(exc, RefundExceedsPaidError):
                assert r > amount - refunded
                assert exc.detail["refundable_fen"] == amount - refunded
            else:
                assert state == rules.REFUNDED
            continue
        refunded += r
        state = rules.next_state(state, action)
        assert (state == rules.REFUNDED) == (refunded == amount)
    assert 0 <= refunded <= amount


@given(amount=st.integers(2, 10**9), part=st.integers(1, 10**9))
def test_escrow_refunds_only_whole_while_held(amount: int, part: int) -> None:
    if part < amount:
        with pytest.raises(EscrowPartialRefundError):
            rules.refund_action(rules.HELD, amount, 0, part)
    elif part == amount:
        assert rules.refund_action(rules.HELD, amount, 0, part) == "refund_all"


@given(amount=st.integers(1, 10**9), data=st.data())
def test_dispute_split_outcomes(amount: int, data: st.DataObject) -> None:
    buyer = data.draw(st.integers(0, amount))
    action = rules.split_action(amount, buyer)
    target = rules.next_state(rules.DISPUTED, action)
    if buyer == amount:
        assert target == rules.REFUNDED
    elif buyer == 0:
        assert target == rules.RELEASED
    else:
        assert target == rules.PARTIALLY_REFUNDED


def test_first_difference_names_the_field() -> None:
    a = {"amount_fen": 1, "subject": "x", "kind": "direct"}
    assert rules.first_difference(a, dict(a)) is None
    assert rules.first_difference(a, {**a, "subject": "y"}) == "subject"
    assert rules.first_difference(a, {**a, "notify_url": "http://x"}) == "notify_url"
