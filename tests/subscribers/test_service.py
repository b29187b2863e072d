"""The subscribers' service API that funding and cash code against."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from wallets import fund

from paycell.clock import ManualClock
from paycell.context import Context
from paycell.ledger.audit import audit
from paycell.subscribers import lifecycle
from paycell.subscribers.errors import (
    InvalidMsisdnError,
    MsisdnRegisteredError,
    PinInvalidError,
    PinLockedError,
    PinTrivialError,
    SubscriberNotFoundError,
)
from paycell.subscribers.service import (
    find_by_msisdn,
    get_subscriber,
    normalise_msisdn,
    open_account,
    verify_pin,
)

PIN = "730419"


def test_open_find_and_verify(ctx: Context, engine: Engine) -> None:
    sub = open_account(ctx, "138 0013 8000", PIN)
    assert sub.msisdn == "+8613800138000" and sub.state == "active" and sub.tier == 0
    wallet = ctx.ledger.account(sub.wallet_account_id)
    assert wallet.name == f"wallet:{sub.id}" and wallet.owner_ref == f"subscriber:{sub.id}"
    assert find_by_msisdn(ctx, "+86 138-0013-8000") == sub == get_subscriber(ctx, sub.id)
    assert find_by_msisdn(ctx, "13900139000") is None
    verify_pin(ctx, sub.id, PIN)
    with pytest.raises(MsisdnRegisteredError):
        open_account(ctx, "+8613800138000", "862514")
    with pytest.raises(SubscriberNotFoundError):
        get_subscriber(ctx, 999)
    named = open_account(ctx, "13900139000", PIN, name="Li Lei",
                         id_number="11010519491231002X")
    assert named.tier == 1 and named.name == "Li Lei"
    assert audit(engine).ok


@pytest.mark.parametrize("text", ["", "12345", "+1 202 555 0100x12", "+1 202 555 010",
                                  "not a number", "+86 10 6552 9988", "+861380013800099"])
def test_bad_msisdns_are_refused(text: str) -> None:
    with pytest.raises(InvalidMsisdnError):
        normalise_msisdn(text)


def test_trivial_pins_are_refused(ctx: Context) -> None:
    for pin in ("000000", "123456", "654321", "890123", "121212", "123123", "12345",
                "1234567", "abcdef", "138000", "000831", "138000"[::-1]):
        with pytest.raises(PinTrivialError):
            open_account(ctx, "+8613800138000", pin)
    with pytest.raises(PinTrivialError):  # the MSISDN's tail
        open_account(ctx, "+8613812345678", "345678")
    assert find_by_msisdn(ctx, "+8613800138000") is None


def test_five_wrong_pins_lock_for_thirty_minutes(ctx: Context, clock: ManualClock) -> None:
    sub = open_account(ctx, "+8613800138000", PIN)
    for left in (4, 3, 2, 1):
        with pytest.raises(PinInvalidError) as exc:
            verify_pin(ctx, sub.id, "111112")
        assert exc.value.detail["remaining_tries"] == left
    with pytest.raises(PinLockedError):
        verify_pin(ctx, sub.id, "111112")
    with pytest.raises(PinLockedError):  # even the right PIN, while locked
        verify_pin(ctx, sub.id, PIN)
    clock.advance(minutes=29)
    with pytest.raises(PinLockedError):
        verify_pin(ctx, sub.id, PIN)
    clock.advance(minutes=1)
    verify_pin(ctx, sub.id, PIN)
    with pytest.raises(PinInvalidError) as exc:  # the count started again
        verify_pin(ctx, sub.id, "111112")
    assert exc.value.detail["remaining_tries"] == 4


def test_a_closed_number_can_be_opened_by_a_new_owner(ctx: Context, engine: Engine) -> None:
    old = open_account(ctx, "+8613800138000", PIN)
    fund(ctx, old, 12_345)
    closed = lifecycle.close_account(ctx, old.id)
    assert closed.subscriber.state == "closed" and closed.paid_to == "unclaimed"
    assert closed.balance_fen == 12_345 and ctx.ledger.account(old.wallet_account_id).closed
    assert find_by_msisdn(ctx, "+8613800138000") is None
    new = open_account(ctx, "+8613800138000", "862514")
    assert new.id != old.id and new.wallet_account_id != old.wallet_account_id
    assert ctx.ledger.account(new.wallet_account_id).balance == 0
    assert find_by_msisdn(ctx, "+8613800138000") == new
    assert audit(engine).ok
