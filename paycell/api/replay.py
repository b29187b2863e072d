"""Replay protection's housekeeping: pruning the nonces a signed request leaves behind.

Merchants' and terminals' signed requests each insert their nonce; the primary key refuses
a replay. A nonce older than the timestamp window can never be replayed (its timestamp
fails the window check first), so its row is only clutter. Deleting the expired rows on
every request made every request scan for them, and concurrent requests wait on each
other's deletes; :class:`Every` lets one request per process do it now and then instead.

Batched requests (taps, signed order creation) spend their nonces together in their
batch's transaction (:func:`spend_nonces`), and check signatures with keys each process
remembers (:func:`remembered`): a signing key never changes under its id.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import sqlite

from paycell.bulk import insert_many


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


def spend_nonces(conn: Connection, table: Table, owner: str,
                 nonces: Sequence[tuple[Any, str, int]], now_us: int, prune: Every
                 ) -> set[int]:
    """Remember ``(owner, nonce, expires_at)`` rows in ``table`` in the caller's
    transaction, in one statement; the indexes of the nonces used before, or twice in
    ``nonces`` (replays: the caller refuses them). Expired rows are pruned when ``prune``
    is due."""
    if prune.due(now_us):
        conn.execute(table.delete().where(table.c.expires_at < now_us))
    rows = [{owner: o, "nonce": n, "expires_at": e}
            for (o, n), e in sorted({(o, n): e for o, n, e in nonces}.items())]
    if conn.dialect.name == "postgresql":  # one text for any number of nonces
        new = {(getattr(r, owner), r.nonce)
               for r in insert_many(conn, table, rows, returning=True,
                                    suffix="ON CONFLICT DO NOTHING")}
    else:
        new = {(r[0], r[1]) for r in conn.execute(
            sqlite.insert(table).on_conflict_do_nothing().returning(table.c[owner],
                                                                   table.c.nonce), rows)}
    seen: set[tuple[Any, str]] = set()
    replayed = set()
    for i, (o, n, _) in enumerate(nonces):
        if (o, n) not in new or (o, n) in seen:
            replayed.add(i)
        seen.add((o, n))
    return replayed


_REMEMBERED_MAX = 100_000  # a fleet of POS terminals per process, keys a few hundred bytes


def remembered(ctx: Any, name: str) -> dict[Hashable, Any]:
    """The signing keys this process has read for ``ctx``, under ``name`` (one dict per
    kind of signer); emptied when it reaches ``_REMEMBERED_MAX`` (see :func:`remember`)."""
    memo: dict[str, dict[Hashable, Any]] | None = getattr(ctx, "_remembered_keys", None)
    if memo is None:
        memo = {}
        ctx._remembered_keys = memo
    return memo.setdefault(name, {})


def remember(keys: dict[Hashable, Any], key: Hashable, value: Any) -> None:
    """Keep ``value`` under ``key``, bounded: the keys of a long-running process's signers
    stay few, but unknown ids are never kept and a full memory starts again."""
    if len(keys) >= _REMEMBERED_MAX:
        keys.clear()
    keys[key] = value
