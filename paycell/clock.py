"""Clocks. Rules never read the time themselves; services are handed a clock.

``ManualClock`` lets tests and operators drive time: replay a day of timeouts in seconds.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now_us(self) -> int: ...


class SystemClock:
    def now_us(self) -> int:
        return time.time_ns() // 1000


class ManualClock:
    """A clock that only moves when told to. Thread-safe."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._us = to_us(start)
        self._lock = threading.Lock()

    def now_us(self) -> int:
        with self._lock:
            return self._us

    def advance(self, seconds: int = 0, **delta: int) -> None:
        step = timedelta(seconds=seconds, **delta)
        with self._lock:
            self._us += step // timedelta(microseconds=1)

    def set(self, when: datetime) -> None:
        with self._lock:
            self._us = to_us(when)


def to_us(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("times are timezone-aware (UTC)")
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def rfc3339(us: int) -> str:
    return from_us(us).isoformat().replace("+00:00", "Z")
