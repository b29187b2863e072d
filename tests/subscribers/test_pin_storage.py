"""How PINs are stored: a keyed, salted verification value; argon2id hashes from before
still verify and are replaced on the next right PIN."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from cash_helpers import PIN, client, clock, ctx, settings, wallet  # type: ignore[import-not-found]
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update

from paycell.context import Context
from paycell.subscribers import pins
from paycell.subscribers.errors import PinInvalidError
from paycell.subscribers.service import verify_pin
from paycell.subscribers.tables import subscribers

__all__ = ["client", "clock", "ctx", "settings"]

KEY = pins.pin_key("a secret")


@given(st.from_regex(r"\A[0-9]{6}\Z"), st.from_regex(r"\A[0-9]{6}\Z"))
def test_a_pin_matches_its_value_and_no_other(pin: str, other: str) -> None:
    value = pins.hash_pin(pin, KEY)
    assert value.startswith("pvv1$") and pin not in value
    assert pins.pin_matches(value, pin, KEY)
    assert pins.pin_matches(value, other, KEY) == (other == pin)


def test_the_value_needs_the_key_and_is_salted() -> None:
    one, two = pins.hash_pin("730419", KEY), pins.hash_pin("730419", KEY)
    assert one != two  # a fresh salt each time: equal PINs do not look equal
    assert not pins.pin_matches(one, "730419", pins.pin_key("another secret"))
    for broken in ("pvv1$zz$00", "pvv1$" + "00" * 16, "", "plain"):
        assert not pins.pin_matches(broken, "730419", KEY)


def test_an_argon2_hash_from_before_verifies_and_is_replaced(ctx: Context) -> None:
    sub, _ = wallet(ctx)
    with ctx.engine.begin() as conn:
        conn.execute(update(subscribers).where(subscribers.c.id == sub.id)
                     .values(pin_hash=PasswordHasher().hash(PIN)))
    with pytest.raises(PinInvalidError):
        verify_pin(ctx, sub.id, "000001")
    with ctx.engine.connect() as conn:
        stored = conn.execute(select(subscribers.c.pin_hash)
                              .where(subscribers.c.id == sub.id)).scalar_one()
    assert stored.startswith("$argon2id$")  # a wrong PIN changes nothing
    verify_pin(ctx, sub.id, PIN)
    with ctx.engine.connect() as conn:
        stored = conn.execute(select(subscribers.c.pin_hash)
                              .where(subscribers.c.id == sub.id)).scalar_one()
    assert stored.startswith("pvv1$")
    verify_pin(ctx, sub.id, PIN)  # and the new value verifies
