"""Tier limits, checked inside the ledger's ``before`` hook (same transaction, row locked).

Money-moving code calls these from ``ledger.post(requests, before=...)``::

    def before(conn):
        guard_outflow(conn, payer.id, amount_fen, ctx.clock.now_us(), settings=ctx.settings)
        guard_inflow(conn, payee.id, amount_fen, settings=ctx.settings)

    ctx.ledger.post(requests, before=before, hook=all_or_nothing)

Pass ``hook=all_or_nothing`` (or a hook that raises when a result failed): the ledger
commits a batch even when a request in it is refused (overdraft...), and the usage
counted by the guard would then be committed without the money having moved.
Each locks the subscriber's row first (FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE
serialises writers), so concurrent outflows of one wallet are counted one after the other.
An exception aborts the whole ``post`` with nothing written, usage included. When one
transfer both debits and credits subscribers, call :func:`lock_subscribers` first.

Outflow usage is counted per day and per month in China Standard Time
(``subscriber_usage``); :func:`release_outflow` gives it back when a hold is voided.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from paycell.config import Settings, get_settings
from paycell.ledger.errors import AmountNotPositiveError
from paycell.ledger.model import TransferResult
from paycell.ledger.tables import accounts
from paycell.subscribers.batch import Wallets, check_cap
from paycell.subscribers.errors import (
    SubscriberClosedError,
    SubscriberNotFoundError,
)
from paycell.subscribers.service import lock_row
from paycell.subscribers.tables import subscribers, usage
from paycell.subscribers.tiers import Tier, periods

__all__ = ["all_or_nothing", "guard_inflow", "guard_outflow", "lock_subscribers",
           "release_outflow", "used_fen"]


def all_or_nothing(conn: Connection, results: list[TransferResult]) -> None:
    """A ledger ``hook``: raise the first refused transfer's error, so that the whole
    ``post`` (the guards' usage included) rolls back."""
    for r in results:
        if r.error is not None:
            raise r.error


def lock_subscribers(conn: Connection, *subscriber_ids: int) -> dict[int, Any]:
    """Lock several subscribers' rows in id order (P2P: payer and payee), so that two
    transfers between the same wallets in opposite directions cannot deadlock; return the
    rows by id, to hand to the guards (``row=``) instead of reading them again.
    SubscriberNotFoundError if one does not exist."""
    ids = sorted(set(subscriber_ids))
    # One statement: on PostgreSQL the rows are locked as the sort hands them up, in id order.
    stmt = select(subscribers).where(subscribers.c.id.in_(ids)).order_by(subscribers.c.id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    rows = {r.id: r for r in conn.execute(stmt)}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise SubscriberNotFoundError(f"subscriber {missing[0]} does not exist")
    return rows


def used_fen(conn: Connection, subscriber_id: int, now_us: int) -> tuple[int, int]:
    """Outflow used so far (today, this month), China Standard Time."""
    day, month = periods(now_us)
    rows = dict(conn.execute(select(usage.c.period, usage.c.used_fen).where(
        usage.c.subscriber_id == subscriber_id, usage.c.period.in_((day, month)))).all())
    return int(rows.get(day, 0)), int(rows.get(month, 0))


def _add(conn: Connection, subscriber_id: int, period: str, delta: int) -> None:
    """Add ``delta`` to a period's usage (the subscriber's row is locked: no race)."""
    t = usage
    cur = conn.execute(select(t.c.used_fen).where(t.c.subscriber_id == subscriber_id,
                                                  t.c.period == period)).scalar()
    if cur is None:
        if delta > 0:
            conn.execute(t.insert().values(subscriber_id=subscriber_id, period=period,
                                           used_fen=delta))
        return
    conn.execute(update(t).where(t.c.subscriber_id == subscriber_id, t.c.period == period)
                 .values(used_fen=max(0, cur + delta)))


def guard_outflow(conn: Connection, subscriber_id: int, amount_fen: int, now_us: int, *,
                  settings: Settings | None = None, row: Any = None) -> None:
    """Allow ``amount_fen`` out of the wallet now, and count it; or raise.

    Locks the subscriber's row (pass ``row`` if :func:`lock_subscribers` already did).
    Raises SubscriberClosedError / SubscriberFrozenError unless the wallet is active,
    LimitExceededError (``limit``: per_transaction, daily or monthly, ``limit_fen``,
    ``remaining_fen``) if the tier's limit would be passed. Pass ``settings=ctx.settings``
    so that configured tiers apply (default: the process's). The checks are the batched
    use cases' own (:class:`~paycell.subscribers.batch.Wallets`), for one wallet; a refusal
    raises before anything is counted.
    """
    if not isinstance(amount_fen, int) or amount_fen <= 0:
        raise AmountNotPositiveError("an outflow is a positive number of fen")
    w = Wallets(conn, settings or get_settings(), now_us,
                **({"locked": [row]} if row is not None else {"ids": [subscriber_id]}))
    w.check_outflow(subscriber_id, amount_fen)
    w.count_outflow(subscriber_id, amount_fen)
    w.write(conn)


def release_outflow(conn: Connection, subscriber_id: int, amount_fen: int, at_us: int) -> None:
    """Give back usage counted by :func:`guard_outflow` at ``at_us`` (e.g. a voided
    withdrawal hold): the day and month of ``at_us`` are reduced, never below zero."""
    if amount_fen <= 0:
        return
    lock_row(conn, subscriber_id)
    day, month = periods(at_us)
    _add(conn, subscriber_id, day, -amount_fen)
    _add(conn, subscriber_id, month, -amount_fen)


def _held_fen(conn: Connection, wallet_account_id: int) -> int:
    """The wallet's balance plus incoming holds: what its balance cap is measured against."""
    w = conn.execute(select(accounts.c.credits_posted, accounts.c.debits_posted,
                            accounts.c.credits_pending)
                     .where(accounts.c.id == wallet_account_id)).one()
    return int(w.credits_posted - w.debits_posted + w.credits_pending)


def balance_headroom_fen(conn: Connection, wallet_account_id: int, tier: Tier) -> int:
    """How much more the wallet may receive under its cap (incoming holds count)."""
    return tier.balance_cap_fen - _held_fen(conn, wallet_account_id)


def guard_inflow(conn: Connection, subscriber_id: int, amount_fen: int, *,
                 settings: Settings | None = None, row: Any = None) -> None:
    """Allow ``amount_fen`` into the wallet, or raise.

    Locks the subscriber's row. Raises SubscriberClosedError for a closed wallet (a frozen
    one may receive) and BalanceCapExceededError (``cap_fen``, ``headroom_fen``) if the
    balance plus incoming holds plus ``amount_fen`` would pass the tier's balance cap.
    """
    if not isinstance(amount_fen, int) or amount_fen <= 0:
        raise AmountNotPositiveError("an inflow is a positive number of fen")
    if row is None:
        row = lock_row(conn, subscriber_id)
    if row.state == "closed":
        raise SubscriberClosedError("this wallet is closed")
    check_cap(settings or get_settings(), row, amount_fen,
              _held_fen(conn, row.wallet_account_id))
