"""The retry schedule: pure, no I/O (imported by ``paycell.config`` to check the setting).

``"15s,15s,30s,3m"`` means: after the first attempt fails, retry 15 s later; after the
second fails, 15 s later; then 30 s; then 3 min; after that attempt fails too, give up.
Units: ``s``, ``m``, ``h``, ``d``; a bare number is seconds.
"""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_STEP = re.compile(r"(\d{1,7})([smhd]?)")


def parse_schedule(text: str) -> tuple[int, ...]:
    """The delays, in seconds, of ``text``. Raises ValueError saying what is wrong."""
    steps = [part.strip().lower() for part in text.split(",")]
    if not text.strip():
        raise ValueError("PAYCELL_NOTIFY_SCHEDULE is empty; give the delays before each "
                         "retry, e.g. 15s,3m,1h")
    delays = []
    for step in steps:
        m = _STEP.fullmatch(step)
        if m is None:
            raise ValueError(f"PAYCELL_NOTIFY_SCHEDULE: {step!r} is not a delay; write a "
                             "whole number with s, m, h or d, e.g. 15s,3m,1h")
        seconds = int(m.group(1)) * _UNITS[m.group(2) or "s"]
        if seconds <= 0:
            raise ValueError(f"PAYCELL_NOTIFY_SCHEDULE: {step!r}: a delay is positive")
        delays.append(seconds)
    return tuple(delays)


def next_delay(schedule: tuple[int, ...], failed_attempts: int) -> int | None:
    """Seconds to wait after the ``failed_attempts``-th scheduled attempt failed, or None
    when the schedule is exhausted (give up)."""
    if failed_attempts < 1 or failed_attempts > len(schedule):
        return None
    return schedule[failed_attempts - 1]


def format_schedule(schedule: tuple[int, ...]) -> str:
    """``(15, 180, 3600)`` -> ``"15s, 3m, 1h"``."""
    out = []
    for s in schedule:
        unit = next(u for u in ("d", "h", "m", "s") if s % _UNITS[u] == 0)
        out.append(f"{s // _UNITS[unit]}{unit}")
    return ", ".join(out)
