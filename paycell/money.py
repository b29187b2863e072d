"""Money is an integer number of minor units (fen) with a currency. Never a float.

Decimal strings are parsed at the edge (``"12.30"`` -> 1230) and more than two decimals is an
error. Splits go through :func:`allocate`, whose parts always add up to the whole.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

CURRENCIES = {"CNY": 2}
_AMOUNT_RE = re.compile(r"^(?P<sign>-)?(?P<int>\d+)(?:\.(?P<frac>\d+))?$")


class MoneyError(ValueError):
    code = "invalid_amount"


class AmountFormatError(MoneyError):
    code = "invalid_amount"


class CurrencyMismatchError(MoneyError):
    code = "currency_mismatch"


class UnknownCurrencyError(MoneyError):
    code = "unknown_currency"


def check_currency(currency: str) -> str:
    if currency not in CURRENCIES:
        raise UnknownCurrencyError(f"unknown currency {currency!r}; supported: CNY")
    return currency


def parse_amount(text: str, currency: str = "CNY") -> int:
    """Parse a decimal string such as ``"12.30"`` into minor units (1230).

    Refuses exponents, thousands separators, more decimals than the currency has, and
    anything that is not plain digits: the caller gets :class:`AmountFormatError`.
    """
    digits = CURRENCIES[check_currency(currency)]
    if not isinstance(text, str):
        raise AmountFormatError("an amount must be given as a decimal string such as '12.30'")
    m = _AMOUNT_RE.match(text.strip())
    if not m:
        raise AmountFormatError(f"{text!r} is not an amount; write it like '12.30'")
    frac = m.group("frac") or ""
    if len(frac) > digits:
        raise AmountFormatError(
            f"{text!r} has {len(frac)} decimals; {currency} has at most {digits}"
        )
    value = int(m.group("int")) * 10**digits + int(frac.ljust(digits, "0") or "0")
    return -value if m.group("sign") else value


def format_amount(minor: int, currency: str = "CNY") -> str:
    """Format minor units as a decimal string: 1230 -> ``"12.30"``."""
    if not isinstance(minor, int) or isinstance(minor, bool):
        raise AmountFormatError("amounts are integer minor units")
    digits = CURRENCIES[check_currency(currency)]
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**digits)
    return f"{sign}{whole}.{frac:0{digits}d}" if digits else f"{sign}{whole}"


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units with its currency."""

    fen: int
    currency: str = "CNY"

    def __post_init__(self) -> None:
        if not isinstance(self.fen, int) or isinstance(self.fen, bool):
            raise AmountFormatError("Money holds an integer number of fen")
        check_currency(self.currency)

    @classmethod
    def parse(cls, text: str, currency: str = "CNY") -> Money:
        return cls(parse_amount(text, currency), currency)

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.fen + other.fen, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.fen - other.fen, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.fen, self.currency)

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise CurrencyMismatchError(f"cannot mix {self.currency} and {other.currency}")

    def allocate(self, weights: Sequence[int]) -> list[Money]:
        return [Money(p, self.currency) for p in allocate(self.fen, weights)]

    def __str__(self) -> str:
        return f"{format_amount(self.fen, self.currency)} {self.currency}"


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` minor units in proportion to integer ``weights``.

    Rounding rule (largest remainder, also called Hamilton's method): each part first gets
    ``floor(total * w / sum(weights))``; the fen left over are then handed out one each to
    the parts with the largest remainders, ties going to the earlier part. So the parts
    always add up to ``total``, each part is within one fen of its exact share, and the
    result does not depend on anything but the arguments. A negative total is split as
    ``-allocate(-total)`` so that refunds mirror the original split exactly.

    Like every largest-remainder split it is not monotone in the total (the "Alabama
    paradox"): splitting one more fen can take a fen from some part. To split a growing
    total consistently (cumulative commissions, say), split each increment and add up.

    >>> allocate(100, [70, 20, 10])
    [70, 20, 10]
    >>> allocate(1, [70, 20, 10])
    [1, 0, 0]
    >>> allocate(10, [1, 1, 1])
    [4, 3, 3]
    """
    if not isinstance(total, int) or isinstance(total, bool):
        raise AmountFormatError("allocate() splits an integer number of minor units")
    if not weights:
        raise ValueError("allocate() needs at least one weight")
    if any((not isinstance(w, int)) or isinstance(w, bool) or w < 0 for w in weights):
        raise ValueError("weights are non-negative integers")
    wsum = sum(weights)
    if wsum == 0:
        raise ValueError("weights must not all be zero")
    if total < 0:
        return [-p for p in allocate(-total, weights)]
    parts = []
    remainders = []
    for i, w in enumerate(weights):
        q, r = divmod(total * w, wsum)
        parts.append(q)
        remainders.append((-r, i))
    left = total - sum(parts)
    for _, i in sorted(remainders)[:left]:
        parts[i] += 1
    return parts
