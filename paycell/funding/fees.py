"""The withdrawal fee rule, pure: no I/O, integer fen only.

fee = amount × rate (basis points), rounded half up to the fen, then kept within
[min, max]. With the defaults (0.1%, min 1.00 CNY, max 25.00 CNY): 500.00 CNY costs 1.00,
5,000.00 costs 5.00, 100,000.00 costs 25.00.
"""

from __future__ import annotations

from dataclasses import dataclass

from paycell.config import Settings


@dataclass(frozen=True, slots=True)
class FeeRule:
    rate_bp: int  # basis points: 10 = 0.1%
    min_fen: int
    max_fen: int

    def __post_init__(self) -> None:
        if self.rate_bp < 0 or self.min_fen < 0 or self.max_fen < self.min_fen:
            raise ValueError("a fee rule needs rate >= 0 and 0 <= min <= max")

    @classmethod
    def from_settings(cls, settings: Settings) -> FeeRule:
        return cls(settings.withdrawal_fee_bp, settings.withdrawal_fee_min_fen,
                   settings.withdrawal_fee_max_fen)


def withdrawal_fee(amount_fen: int, rule: FeeRule) -> int:
    """The fee in fen for withdrawing ``amount_fen`` (> 0): always within the rule's bounds
    and never decreasing as the amount grows."""
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
        raise ValueError("a withdrawal is a positive integer number of fen")
    proportional = (amount_fen * rule.rate_bp + 5_000) // 10_000
    return min(rule.max_fen, max(rule.min_fen, proportional))
