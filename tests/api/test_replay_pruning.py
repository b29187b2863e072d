"""``Every``: the nonce pruning runs at most once per interval of the app's clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from paycell.api.replay import Every

SECOND = 1_000_000


def test_due_once_per_interval() -> None:
    e = Every(10)
    t = 1_700_000_000 * SECOND
    assert e.due(t)
    assert not e.due(t)
    assert not e.due(t + 10 * SECOND - 1)
    assert e.due(t + 10 * SECOND)
    assert not e.due(t + 11 * SECOND)


def test_a_clock_that_went_back_is_due() -> None:
    e = Every(10)
    t = 1_700_000_000 * SECOND
    assert e.due(t)
    assert e.due(t - 3600 * SECOND)  # e.g. the next test's manual clock
    assert not e.due(t - 3600 * SECOND + 1)


@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=200))
def test_never_twice_within_an_interval_of_a_forward_clock(steps: list[int]) -> None:
    e = Every(1)
    now, last = 0, None
    for step in steps:
        now += step * 1000  # microseconds, never backwards
        if e.due(now):
            assert last is None or now - last >= SECOND
            last = now
        else:
            assert last is not None and now - last < SECOND
