"""Pure rules of channel partners: field formats, the expansion condition, the maintenance
fee, months. No I/O, no clock: the services load, ask here, and write."""

from __future__ import annotations

import calendar as _cal
import re
from datetime import date

from paycell.partners.errors import MonthInvalidError, PartnerInvalidError
from paycell.settlement import calendar as bizcal

FEE_MIN_FEN = 20_000  # 200 CNY
FEE_MAX_FEN = 200_000  # 2,000 CNY
CODE_BASE = 10_000
PARTNER_CODE = re.compile(r"P[0-9]{5,12}")
PHONE = re.compile(r"\+?[0-9][0-9 -]{5,30}")
ACCOUNT_NUMBER = re.compile(r"[0-9]{8,30}")
DAY_US = 86_400_000_000


def partner_code(partner_id: int) -> str:
    """The public partner number: ``P`` and 10000 + id (P10001, P10002, ...)."""
    return f"P{CODE_BASE + partner_id}"


def expansion_fee(value: object) -> int:
    """An expansion fee in fen, 20,000 to 200,000 (200 to 2,000 CNY) inclusive."""
    if (not isinstance(value, int) or isinstance(value, bool)
            or not FEE_MIN_FEN <= value <= FEE_MAX_FEN):
        raise PartnerInvalidError(
            f"expansion_fee_fen is an integer from {FEE_MIN_FEN} to {FEE_MAX_FEN} fen "
            "(200 to 2,000 CNY)", field="expansion_fee_fen")
    return value


def text(value: str | None, field: str, max_len: int) -> str:
    value = (value or "").strip()
    if not value or len(value) > max_len or not value.isprintable():
        raise PartnerInvalidError(f"{field} is 1 to {max_len} printable characters",
                                  field=field)
    return value


def pattern(value: str | None, field: str, regex: re.Pattern[str], what: str) -> str:
    value = (value or "").replace(" ", "") if field == "bank_account_number" else (value or "")
    value = value.strip()
    if not regex.fullmatch(value):
        raise PartnerInvalidError(f"{field}: {what}", field=field)
    return value


def month(text_: str) -> tuple[int, int]:
    """``YYYY-MM`` -> (year, month); :class:`MonthInvalidError` otherwise."""
    try:
        return bizcal.parse_month(text_)
    except ValueError as exc:
        raise MonthInvalidError(str(exc), field="month") from None


def month_text(year: int, month_: int) -> str:
    return f"{year:04d}-{month_:02d}"


def last_day(year: int, month_: int) -> date:
    return date(year, month_, _cal.monthrange(year, month_)[1])


def previous_month(day: date) -> tuple[int, int]:
    return (day.year - 1, 12) if day.month == 1 else (day.year, day.month - 1)


def maintenance_fen(terminals: int, per_terminal_fen: int) -> int:
    """A month's maintenance fee for ``terminals`` counted terminals."""
    return terminals * per_terminal_fen


def expansion_due(activated_at: int | None, now_us: int, days: int, sales: int,
                  min_sales: int) -> bool:
    """The expansion condition (the SQL in ``fees.py`` says the same, set-based): active
    for at least ``days`` whole days and at least ``min_sales`` sales."""
    return (activated_at is not None and now_us - activated_at >= days * DAY_US
            and sales >= min_sales)


def optional_int(value: object, field: str, low: int, high: int) -> int | None:
    """None, or an integer from ``low`` to ``high``: a partner-specific rule."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise PartnerInvalidError(f"{field} is an integer from {low} to {high}", field=field)
    return value
