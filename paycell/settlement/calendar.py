"""Business dates: which instants a business date (China Standard Time) covers.

A business date D ends at its cut-off (``Settings.clearing_cutoff``, "HH:MM" CST) and
lasts 24 hours: with the default "00:00" it is the calendar day D in China,
``[D 00:00, D+1 00:00)``; with "23:00" it is ``[D-1 23:00, D 23:00)``, so a sale at 23:30
belongs to the next business date. Times are integer microseconds since the Unix epoch
(UTC), like the ledger's timestamps. Pure: no I/O.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

CST = timezone(timedelta(hours=8), "CST")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_cutoff(text: str) -> time:
    """``"HH:MM"`` -> a time; ValueError naming the expected form otherwise."""
    try:
        hh, mm = text.split(":")
        if len(hh) != 2 or len(mm) != 2:
            raise ValueError
        return time(int(hh), int(mm))
    except ValueError:
        raise ValueError(f"a cut-off is HH:MM (CST), e.g. 00:00 or 23:00; got {text!r}") from None


def parse_date(text: str) -> date:
    """``"YYYY-MM-DD"`` -> a date; ValueError with the expected form otherwise."""
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"a business date is YYYY-MM-DD, e.g. 2026-11-25; got {text!r}") from None


def to_us(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def window(day: date, cutoff: str = "00:00") -> tuple[int, int]:
    """``(start_us, end_us)`` of business date ``day``: start inclusive, end exclusive."""
    cut = parse_cutoff(cutoff)
    end = datetime.combine(day + timedelta(days=1) if cut == time(0) else day, cut, CST)
    return to_us(end - timedelta(days=1)), to_us(end)


def business_date(at_us: int, cutoff: str = "00:00") -> date:
    """The business date an instant belongs to."""
    local = (EPOCH + timedelta(microseconds=at_us)).astimezone(CST)
    cut = parse_cutoff(cutoff)
    day = local.date()
    return day + timedelta(days=1) if local.time() >= cut and cut != time(0) else day


def month_window(year: int, month: int) -> tuple[int, int]:
    """``(start_us, end_us)`` of a calendar month in CST."""
    start = datetime(year, month, 1, tzinfo=CST)
    nxt = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=CST)
    return to_us(start), to_us(nxt)


def parse_month(text: str) -> tuple[int, int]:
    """``"YYYY-MM"`` -> (year, month); ValueError with the expected form otherwise."""
    try:
        if len(text) != 7 or text[4] != "-":
            raise ValueError
        year, month = int(text[:4]), int(text[5:])
        date(year, month, 1)
    except ValueError:
        raise ValueError(f"a month is YYYY-MM, e.g. 2026-11; got {text!r}") from None
    return year, month
