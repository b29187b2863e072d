"""Money: integer fen, strict parsing, and allocate() whose parts always add up."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paycell.money import (
    AmountFormatError,
    CurrencyMismatchError,
    Money,
    UnknownCurrencyError,
    allocate,
    format_amount,
    parse_amount,
)


@pytest.mark.parametrize(
    ("text", "fen"),
    [("12.30", 1230), ("0.01", 1), ("7", 700), ("0.5", 50), ("500.00", 50000), ("-3.20", -320)],
)
def test_parse_decimal_strings(text: str, fen: int) -> None:
    assert parse_amount(text) == fen


@pytest.mark.parametrize("text", ["1.234", "1e3", "1,000.00", "", "abc", "12.", ".5", "1.2.3",
                                  " ", "NaN", "inf", "0x10"])
def test_parse_refuses_what_is_not_a_plain_amount(text: str) -> None:
    with pytest.raises(AmountFormatError):
        parse_amount(text)


def test_parse_refuses_floats_and_unknown_currencies() -> None:
    with pytest.raises(AmountFormatError):
        parse_amount(12.3)  # type: ignore[arg-type]
    with pytest.raises(UnknownCurrencyError):
        parse_amount("1.00", "XXX")


@given(st.integers(min_value=-10**15, max_value=10**15))
def test_format_then_parse_round_trips(fen: int) -> None:
    assert parse_amount(format_amount(fen)) == fen


def test_money_refuses_float_and_mixed_currencies() -> None:
    with pytest.raises(AmountFormatError):
        Money(1.5)  # type: ignore[arg-type]
    a = Money(100)
    assert str(a + Money(5)) == "1.05 CNY"
    object.__setattr__(b := Money(1), "currency", "USD")
    with pytest.raises(CurrencyMismatchError):
        _ = a + b


def test_allocate_worked_examples() -> None:
    # The seed's card-fee split: issuer 70%, acquirer 20%, network 10%.
    assert allocate(1000, [70, 20, 10]) == [700, 200, 100]
    # 1 fen cannot be split; it goes to the largest share.
    assert allocate(1, [70, 20, 10]) == [1, 0, 0]
    # Equal remainders: the earlier part gets the extra fen.
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    # A refund mirrors the original split exactly.
    assert allocate(-100, [1, 1, 1]) == [-34, -33, -33]
    assert allocate(999, [0, 1]) == [0, 999]


@given(
    st.integers(min_value=-10**12, max_value=10**12),
    st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=12).filter(any),
)
def test_allocate_parts_sum_to_total_and_stay_within_a_fen(total: int, weights: list[int]) -> None:
    parts = allocate(total, weights)
    assert sum(parts) == total
    assert len(parts) == len(weights)
    wsum = sum(weights)
    for p, w in zip(parts, weights, strict=True):
        exact_num = total * w  # the exact share is exact_num / wsum
        assert abs(p * wsum - exact_num) < wsum  # |p - exact| < 1 fen
        if w == 0:
            assert p == 0


@given(st.integers(min_value=0, max_value=10**9),
       st.lists(st.integers(min_value=1, max_value=1000), min_size=1, max_size=8))
def test_allocate_gives_each_part_its_floor_or_ceiling(total: int, weights: list[int]) -> None:
    wsum = sum(weights)
    for p, w in zip(allocate(total, weights), weights, strict=True):
        assert p in (total * w // wsum, -(-total * w // wsum))


def test_allocate_alabama_paradox_is_documented() -> None:
    # Largest remainder is not monotone in the total (hypothesis found this): one more fen
    # to split can take a fen away from a part. The docstring says so; callers that need
    # monotone splits of growing totals must split the increments instead.
    assert allocate(3, [1, 3, 3]) == [1, 1, 1]
    assert allocate(4, [1, 3, 3]) == [0, 2, 2]
    assert "not monotone" in (allocate.__doc__ or "")


def test_allocate_refuses_bad_weights() -> None:
    for weights in ([], [0, 0], [-1, 2]):
        with pytest.raises(ValueError):
            allocate(10, weights)
    with pytest.raises(AmountFormatError):
        allocate(10.0, [1])  # type: ignore[arg-type]
