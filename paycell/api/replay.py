"""Replay protection's housekeeping: pruning the nonces a signed request leaves behind.

Merchants' and terminals' signed requests each insert their nonce; the primary key refuses
a replay. A nonce older than the timestamp window can never be replayed (its timestamp
fails the window check first), so its row is only clutter. Deleting the expired rows on
every request made every request scan for them, and concurrent requests wait on each
other's deletes; :class:`Every` lets one request per process do it now and then instead.
"""

from __future__ import annotations

import threading


class Every:
    """``due(now_us)`` is true at most once per ``seconds`` of the caller's clock (the app's
    clock, so tests can move it), per process and across threads."""

    def __init__(self, seconds: float) -> None:
        self.interval_us = int(seconds * 1_000_000)
        self._next = -1
        self._lock = threading.Lock()

    def due(self, now_us: int) -> bool:
        if self._waiting(now_us):  # the common case, without the lock
            return False
        with self._lock:
            if self._waiting(now_us):
                return False
            self._next = now_us + self.interval_us
            return True

    def _waiting(self, now_us: int) -> bool:
        # A clock that went back (a test's manual clock, a corrected system clock) is due.
        return self._next - self.interval_us <= now_us < self._next


# How often a process prunes expired nonces: well inside any timestamp window.
NONCE_PRUNE_S = 10.0
