"""A wallet's life after opening: KYC tier upgrade, operator freeze/unfreeze, close (销户).

Every state change is logged in ``subscriber_events`` with who did it and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from paycell.context import Context
from paycell.ledger import chart
from paycell.ledger.model import TransferRequest, TransferResult
from paycell.ledger.tables import accounts
from paycell.subscribers.errors import (
    AccountHasPendingHoldsError,
    ClosePayoutPendingError,
    IdNumberInvalidError,
    SubscriberClosedError,
    SubscriberFrozenError,
    SubscriberStateError,
)
from paycell.subscribers.service import (
    Subscriber,
    get_subscriber,
    id_number_hash,
    lock_row,
    normalise_id_number,
    record_event,
    revoke_sessions,
)
from paycell.subscribers.tables import events, subscribers

Payout = Callable[[Subscriber, int], str | None]


# -- KYC and states ----------------------------------------------------------------------------
def upgrade_kyc(ctx: Context, subscriber_id: int, name: str, id_number: str) -> Subscriber:
    """Name the wallet: tier 1 with a name and an ID-document number (only its keyed hash
    and last four characters are stored). Idempotent for the same document; a different
    document than the one on file is refused (IdNumberInvalidError)."""
    if not name.strip():
        raise IdNumberInvalidError("a named wallet needs a name")
    number = normalise_id_number(id_number)
    digest, now = id_number_hash(ctx, number), ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        row = lock_row(conn, subscriber_id)
        if row.state == "closed":
            raise SubscriberClosedError("this wallet is closed")
        if row.id_number_hash not in (None, digest):
            raise IdNumberInvalidError("a different ID document is already on file")
        conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id).values(
            tier=max(row.tier, 1), name=name.strip()[:200], id_number_hash=digest,
            id_number_last4=number[-4:], updated_at=now))
        if row.tier < 1:
            record_event(conn, subscriber_id, "tier_upgraded", "subscriber", now, "tier 1")
    return get_subscriber(ctx, subscriber_id)


def _set_state(ctx: Context, subscriber_id: int, want: str, frm: str, reason: str,
               actor: str) -> Subscriber:
    if not reason.strip():
        raise SubscriberStateError("give a reason (it is kept in the audit log)")
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        row = lock_row(conn, subscriber_id)
        if row.state != frm:
            raise SubscriberStateError(f"the subscriber is {row.state}, not {frm}")
        conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id)
                     .values(state=want, updated_at=now))
        record_event(conn, subscriber_id, "frozen" if want == "frozen" else "unfrozen",
                     actor, now, reason.strip())
    return get_subscriber(ctx, subscriber_id)


def freeze(ctx: Context, subscriber_id: int, reason: str, actor: str = "operator"
           ) -> Subscriber:
    """Freeze an active wallet: it can still receive, not pay nor withdraw. Logged."""
    return _set_state(ctx, subscriber_id, "frozen", "active", reason, actor)


def unfreeze(ctx: Context, subscriber_id: int, reason: str, actor: str = "operator"
             ) -> Subscriber:
    """Unfreeze a frozen wallet. Logged."""
    return _set_state(ctx, subscriber_id, "active", "frozen", reason, actor)


# -- close -----------------------------------------------------------------------------------
class _BalanceMoved(Exception):
    """The wallet changed between reading its balance and closing: read again."""


@dataclass(frozen=True)
class Closed:
    """A closed wallet: where its remaining balance went (``paid_to`` is ``payout``,
    ``unclaimed`` or None for an empty wallet) and the reference of that movement."""

    subscriber: Subscriber
    balance_fen: int
    paid_to: str | None
    reference: str | None


def close_account(ctx: Context, subscriber_id: int, *, payout: Payout | None = None,
                  actor: str = "subscriber") -> Closed:
    """Close the wallet (销户). Refused while holds are pending on it
    (AccountHasPendingHoldsError) and for a frozen wallet (SubscriberFrozenError).

    The remaining balance goes to ``payout(subscriber, balance_fen)`` if given: it returns
    its reference once the wallet is empty, or None to decline (no bank card bound); a
    payout that leaves money on the wallet gets ClosePayoutPendingError and nothing is
    closed (close again once it settles). Otherwise the balance goes, in the same
    transaction as the state change, to the UNCLAIMED system account (held for
    collection, transfer ``close:{id}``). Every session is revoked and the ledger account
    closed. Idempotent: closing a closed wallet finishes what a crash may have left (the
    ledger account's closing) and answers as before.
    """
    sub = get_subscriber(ctx, subscriber_id)
    balance, paid_to, ref = 0, None, None
    if sub.state != "closed":
        if sub.state == "frozen":
            raise SubscriberFrozenError("a frozen wallet cannot be closed")
        wallet = ctx.ledger.account(sub.wallet_account_id)
        if wallet.debits_pending or wallet.credits_pending:
            raise AccountHasPendingHoldsError("money is still held on this wallet")
        balance = wallet.balance
        if balance > 0 and payout is not None:
            ref = payout(sub, balance)
            wallet = ctx.ledger.account(sub.wallet_account_id)
            if ref is not None and (wallet.balance or wallet.debits_pending
                                    or wallet.credits_pending):
                raise ClosePayoutPendingError("the payout has not settled yet; close again "
                                              "once it has", balance_fen=wallet.balance)
            paid_to = "payout" if ref is not None else None
        swept = _sweep_and_close(ctx, sub, actor)
        if swept:
            balance, paid_to, ref = swept, "unclaimed", f"close:{sub.id}"
    else:
        moved = ctx.ledger.transfer(f"close:{sub.id}")
        if moved is not None:
            balance, paid_to, ref = moved.amount, "unclaimed", moved.id
    wallet = ctx.ledger.account(sub.wallet_account_id)
    if not wallet.closed:
        ctx.ledger.close_account(wallet.id)
    return Closed(get_subscriber(ctx, subscriber_id), balance, paid_to, ref)


def _sweep_and_close(ctx: Context, sub: Subscriber, actor: str) -> int:
    """Move what is left to UNCLAIMED and mark the subscriber closed, in one transaction;
    returns the amount moved."""
    unclaimed = chart.system_account(ctx.ledger, chart.Code.UNCLAIMED)
    for _ in range(10):
        balance = ctx.ledger.account(sub.wallet_account_id).balance

        def before(conn: Connection, expected: int = balance) -> None:
            row = lock_row(conn, sub.id)
            if row.state != "active":
                raise SubscriberStateError(f"the subscriber is {row.state}")
            w = conn.execute(select(accounts).where(accounts.c.id == sub.wallet_account_id)
                             ).one()
            if w.debits_pending or w.credits_pending:
                raise AccountHasPendingHoldsError("money is still held on this wallet")
            if w.credits_posted - w.debits_posted != expected:
                raise _BalanceMoved

        def mark(conn: Connection, results: list[TransferResult] | None = None,
                 expected: int = balance) -> None:
            for r in results or []:
                r.unwrap()  # a refused sweep aborts the state change with it
            now = ctx.clock.now_us()
            conn.execute(update(subscribers).where(subscribers.c.id == sub.id).values(
                state="closed", closed_at=now, updated_at=now))
            revoke_sessions(conn, sub.id, "closed", now)
            record_event(conn, sub.id, "closed", actor, now,
                         f"{expected} fen to unclaimed" if expected else None)

        try:
            if balance == 0:
                with ctx.engine.begin() as conn:
                    before(conn)
                    mark(conn)
                return 0
            req = TransferRequest(f"close:{sub.id}", sub.wallet_account_id, unclaimed.id,
                                  balance, code=chart.TransferCode.CLOSE_PAYOUT,
                                  ref="wallet closed: held for collection")
            ctx.ledger.post([req], before=before, hook=mark)
            return balance
        except _BalanceMoved:
            continue
    raise ClosePayoutPendingError("the wallet keeps moving; try again")


@dataclass(frozen=True)
class Details:
    """What an operator sees of a subscriber (never the PIN nor the full ID number)."""

    subscriber: Subscriber
    balance_fen: int
    id_number_last4: str | None
    pin_locked_until: int | None
    closed_at: int | None
    events: list[tuple[str, str, str | None, int]]  # kind, actor, reason, at; newest first


def describe(ctx: Context, subscriber_id: int, events_limit: int = 20) -> Details:
    """The operator's view of one subscriber, with the latest audit events."""
    sub = get_subscriber(ctx, subscriber_id)
    with ctx.engine.connect() as conn:
        row = conn.execute(select(subscribers).where(subscribers.c.id == sub.id)).one()
        evs = conn.execute(select(events.c.kind, events.c.actor, events.c.reason,
                                  events.c.created_at)
                           .where(events.c.subscriber_id == sub.id)
                           .order_by(events.c.id.desc()).limit(events_limit)).all()
    return Details(sub, ctx.ledger.account(sub.wallet_account_id).balance,
                   row.id_number_last4, row.pin_locked_until, row.closed_at,
                   [(e.kind, e.actor, e.reason, e.created_at) for e in evs])
