"""The subscribers a batch of payments touches, locked once, checked command by command.

A batched use case (P2P in ``funding/p2p_send.py``, the NFC tap in
``onsite/authorise_batch.py``) locks every wallet holder its commands name in one statement,
in id order, and then asks :class:`Wallets` the questions ``service.verify_pin`` and
``limits.guard_outflow`` / ``guard_inflow`` answer one request at a time, with the same
answers: as the earlier commands of the batch have left the rows (PIN failures, outflow
usage). :meth:`Wallets.write` then writes what changed, in a few statements for the batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, and_, bindparam, or_, select

from paycell.bulk import insert_many, update_many
from paycell.clock import rfc3339
from paycell.config import Settings
from paycell.ledger.model import AccountState
from paycell.ledger.pgbulk import driver_rows, ints, texts
from paycell.subscribers import pins
from paycell.subscribers.errors import (
    BalanceCapExceededError,
    LimitExceededError,
    PinInvalidError,
    PinLockedError,
    SubscriberClosedError,
    SubscriberFrozenError,
    SubscriberNotFoundError,
)
from paycell.subscribers.service import record_event
from paycell.subscribers.tables import subscribers, usage
from paycell.subscribers.tiers import periods, tier_limits

# Usage added per (subscriber, period): the subscribers are locked, so no other writer races.
_ADD_USAGE = ("ON CONFLICT (subscriber_id, period)"
              " DO UPDATE SET used_fen = subscriber_usage.used_fen + excluded.used_fen")


def _lock_statement(numbers: bool) -> Any:
    s = subscribers
    cond: Any = s.c.id.in_(bindparam("ids", expanding=True))
    if numbers:
        cond = or_(cond, and_(s.c.msisdn.in_(bindparam("numbers", expanding=True)),
                              s.c.state != "closed"))
    return select(s).where(cond).order_by(s.c.id)  # SQLite: BEGIN IMMEDIATE holds it all


# Built once (every batch runs them): by whether numbers are asked for.
_LOCK = {n: _lock_statement(n) for n in (False, True)}
# The same two on PostgreSQL: arrays, one text whatever the batch's size (an expanding IN
# is new text per size, rendered by SQLAlchemy and parsed by the server every time).
_LOCK_PG = ("SELECT * FROM subscribers WHERE id = ANY(%s::bigint[])"
            " OR (msisdn = ANY(%s::text[]) AND state <> 'closed') ORDER BY id FOR UPDATE")
_USED_PG = ("SELECT subscriber_id, period, used_fen FROM subscriber_usage"
            " WHERE subscriber_id = ANY(%s::bigint[]) AND period IN (%s, %s)")
_USED = select(usage.c.subscriber_id, usage.c.period, usage.c.used_fen).where(
    usage.c.subscriber_id.in_(bindparam("ids", expanding=True)),
    usage.c.period.in_([bindparam("day"), bindparam("month")]))


class Wallets:
    """Locks the subscribers ``ids`` and the open wallets of ``numbers`` (one statement, id
    order: FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE holds everything already)."""

    def __init__(self, conn: Connection, settings: Settings, now: int, *,
                 ids: Iterable[int] = (), numbers: Iterable[str] = (),
                 locked: Iterable[Any] = ()) -> None:
        """``locked``: rows the caller has locked already (in this transaction), used as
        they are instead of ``ids``."""
        self.settings, self.now = settings, now
        self.day, self.month = periods(now)
        ids, numbers = sorted(set(ids)), sorted(set(numbers))
        self._rows: dict[int, Any] = {}
        self._open: dict[str, Any] = {}
        wanted = set(numbers)
        rows = list(locked)
        pg = conn.dialect.name == "postgresql"
        if pg and (ids or numbers):
            rows += driver_rows(conn, _LOCK_PG, (ints(ids), texts(numbers)), named=True)
        elif ids or numbers:
            rows += conn.execute(_LOCK[bool(numbers)],
                                 {"ids": ids, "numbers": numbers}).all()
        for r in rows:
            self._rows[r.id] = r
            if r.state != "closed" and r.msisdn in wanted:
                self._open[r.msisdn] = r
        self._pin = {i: pins.PinState(r.pin_failures, r.pin_locked_until)
                     for i, r in self._rows.items()}
        self._hash = {i: r.pin_hash for i, r in self._rows.items()}
        self._pin_dirty: set[int] = set()
        self._events: list[tuple[int, str]] = []
        used: Any = ()
        if self._rows and pg:
            used = driver_rows(conn, _USED_PG, (ints(self._rows), self.day, self.month))
        elif self._rows:
            used = conn.execute(_USED, {"ids": list(self._rows), "day": self.day,
                                        "month": self.month})
        self._used = {(r[0], r[1]): int(r[2]) for r in used}
        self._added: dict[tuple[int, str], int] = {}

    def __contains__(self, subscriber_id: object) -> bool:
        return subscriber_id in self._rows

    def row(self, subscriber_id: int) -> Any:
        """The locked row; SubscriberNotFoundError if there is none."""
        row = self._rows.get(subscriber_id)
        if row is None:
            raise SubscriberNotFoundError(f"subscriber {subscriber_id} does not exist")
        return row

    def holder(self, msisdn: str) -> Any | None:
        """The open wallet of a number asked for, or None."""
        return self._open.get(msisdn)

    def verify_pin(self, subscriber_id: int, pin: str) -> None:
        """``service.verify_pin`` on the locked row: a wrong PIN is counted (written with the
        batch) and raised; the ``pin_max_failures``-th in a row locks PIN use."""
        if self.row(subscriber_id).state == "closed":
            raise SubscriberClosedError("this wallet is closed")
        st = self._pin[subscriber_id]
        if pins.locked(st, self.now):
            _raise_locked(st)
        key = pins.pin_key(self.settings.secret_key)
        stored = self._hash[subscriber_id]
        if pins.pin_matches(stored, pin, key):
            if pins.needs_rehash(stored):  # an old argon2id hash: store its PVV instead
                self._hash[subscriber_id] = pins.hash_pin(pin, key)
                self._pin_dirty.add(subscriber_id)
            if st.failures:
                self._pin[subscriber_id] = pins.after_success()
                self._pin_dirty.add(subscriber_id)
            return
        s = self.settings
        after = pins.after_failure(st, self.now, s.pin_max_failures, s.pin_lock_s)
        self._pin[subscriber_id] = after
        self._pin_dirty.add(subscriber_id)
        if after.locked_until:
            self._events.append((subscriber_id, f"{s.pin_max_failures} wrong PINs"))
            _raise_locked(after)
        raise PinInvalidError("wrong PIN", remaining_tries=s.pin_max_failures - after.failures)

    def check_outflow(self, subscriber_id: int, amount_fen: int) -> None:
        """``limits.guard_outflow``'s checks (state, tier limits), counting nothing: call
        :meth:`count_outflow` once the money has moved."""
        row = self.row(subscriber_id)
        if row.state == "closed":
            raise SubscriberClosedError("this wallet is closed")
        if row.state == "frozen":
            raise SubscriberFrozenError("this wallet is frozen: it can receive, not pay")
        tier = tier_limits(self.settings.kyc_tiers_json, row.tier)
        if amount_fen > tier.per_transaction_fen:
            raise LimitExceededError(
                f"over the tier {tier.tier} limit per transaction", limit="per_transaction",
                limit_fen=tier.per_transaction_fen, remaining_fen=tier.per_transaction_fen)
        for name, cap, period in (("daily", tier.daily_fen, self.day),
                                  ("monthly", tier.monthly_fen, self.month)):
            used = self._used.get((subscriber_id, period), 0)
            if used + amount_fen > cap:
                raise LimitExceededError(f"over the tier {tier.tier} {name} outflow limit",
                                         limit=name, limit_fen=cap,
                                         remaining_fen=max(0, cap - used))

    def count_outflow(self, subscriber_id: int, amount_fen: int) -> None:
        for period in (self.day, self.month):
            k = (subscriber_id, period)
            self._used[k] = self._used.get(k, 0) + amount_fen
            self._added[k] = self._added.get(k, 0) + amount_fen

    def check_inflow(self, row: Any, amount_fen: int, wallet: AccountState | None) -> None:
        """``limits.guard_inflow`` for an open wallet whose account the batch holds."""
        held = 0 if wallet is None else (wallet.credits_posted - wallet.debits_posted
                                         + wallet.credits_pending)
        check_cap(self.settings, row, amount_fen, held)

    def write(self, conn: Connection) -> None:
        """PIN counts (and hashes brought up to date), PIN-lock events, outflow usage."""
        s = subscribers
        update_many(conn, s, ("id",), ("pin_hash", "pin_failures", "pin_locked_until"),
                    [(i, self._hash[i], self._pin[i].failures, self._pin[i].locked_until)
                     for i in sorted(self._pin_dirty)])
        for sid, reason in self._events:
            record_event(conn, sid, "pin_locked", "system", self.now, reason)
        insert_many(conn, usage, [{"subscriber_id": sid, "period": p, "used_fen": n}
                                  for (sid, p), n in sorted(self._added.items())],
                    suffix=_ADD_USAGE)


def check_cap(settings: Settings, row: Any, amount_fen: int, held_fen: int) -> None:
    """BalanceCapExceededError (``cap_fen``, ``headroom_fen``) if the wallet's balance plus
    incoming holds (``held_fen``) plus ``amount_fen`` would pass its tier's balance cap."""
    tier = tier_limits(settings.kyc_tiers_json, row.tier)
    headroom = tier.balance_cap_fen - held_fen
    if amount_fen > headroom:
        raise BalanceCapExceededError(
            f"the tier {tier.tier} balance cap is {tier.balance_cap_fen} fen",
            cap_fen=tier.balance_cap_fen, headroom_fen=max(0, headroom))


def _raise_locked(st: pins.PinState) -> None:
    assert st.locked_until is not None
    raise PinLockedError("too many wrong PINs: PIN use is locked for now",
                         locked_until=rfc3339(st.locked_until))
