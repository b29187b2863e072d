"""P2P transfers by MSISDN, confirmed with the payment PIN (sending them, one or many at
once: ``p2p_send.py``; claiming, returning and listing them: here).

To a registered wallet: one transfer ``p2p:{ref}`` wallet -> wallet (``TransferCode.P2P``).
To a number without a wallet: a hold ``p2p:{ref}`` from the sender's wallet to the P2P
claimable account (``TransferCode.P2P_CLAIMABLE``, timeout ``p2p_claim_timeout_s``, 7 days)
and an SMS inviting the recipient. When the number opens a wallet the hold is posted and the
money moved on, in one linked pair (``p2p:{ref}:post``, ``p2p:{ref}:claim``); if nobody
claims it, the ledger's expiry voids the hold (the money is back with the sender) and
:func:`return_expired_transfers` marks it returned, gives back the sender's outflow usage
and tells the sender by SMS.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, or_, select, update

from paycell.context import Context
from paycell.errors import ConflictError, InvalidRequestError, PaycellError
from paycell.funding.cash_common import AlreadyAppliedError, locking, post_recorded
from paycell.funding.cash_tables import p2p_transfers
from paycell.gateways.sms import record_all
from paycell.ledger import TransferFlags, TransferRequest, TransferResult, chart
from paycell.ledger import errors as le
from paycell.money import format_amount
from paycell.subscribers import hooks
from paycell.subscribers.limits import (
    guard_inflow,
    release_outflow,
)
from paycell.subscribers.service import (
    Subscriber,
    get_subscriber,
    mask_msisdn,
)
from paycell.subscribers.tables import subscribers

log = logging.getLogger(__name__)
NOTE_MAX = 140


class P2PToSelfError(InvalidRequestError):
    code = "p2p_to_self"


class P2PAmountInvalidError(InvalidRequestError):
    code = "amount_invalid"


class InsufficientBalanceError(ConflictError):
    """The wallet's available balance (``available_fen``) does not cover the transfer."""

    code = "insufficient_balance"


class _NotClaimable(Exception):
    """Internal: the transfer was claimed or returned meanwhile."""


@dataclass(frozen=True)
class P2PTransfer:
    id: int
    ref: str
    sender_id: int
    sender_msisdn: str
    recipient_msisdn: str
    recipient_id: int | None
    amount_fen: int
    note: str | None
    state: str  # completed | pending_claim | claimed | returned
    created_at: int
    expires_at: int | None
    resolved_at: int | None


def _p2p(r: Any) -> P2PTransfer:
    return P2PTransfer(r.id, r.ref, r.sender_id, r.sender_msisdn, r.recipient_msisdn,
                       r.recipient_id, r.amount_fen, r.note, r.state, r.created_at,
                       r.expires_at, r.resolved_at)


def claimable_account_id(ctx: Context) -> int:
    """The P2P claimable account: a liability (money owed to a recipient not yet known).
    Opened on first use; its id, which never changes, is remembered per ledger."""
    known = _CLAIMABLE.get(ctx.ledger)
    if known is None:
        known = _CLAIMABLE[ctx.ledger] = chart.system_account(
            ctx.ledger, chart.Code.UNCLAIMED, "p2p").id
    return known


_CLAIMABLE: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def _find(ctx: Context, ref: str) -> P2PTransfer | None:
    with ctx.engine.connect() as conn:
        row = conn.execute(select(p2p_transfers).where(p2p_transfers.c.ref == ref)).first()
    return None if row is None else _p2p(row)


def claim_pending_transfers(ctx: Context, subscriber: Subscriber) -> int:
    """Deliver to ``subscriber``'s wallet every P2P transfer waiting for its number; return
    how many were delivered. Safe to call any time and concurrently (sign-up, login, the
    worker): each hold is posted once. A transfer the wallet cannot take now (balance cap)
    keeps waiting until it can or until it returns to its sender."""
    if subscriber.state == "closed":
        return 0
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(p2p_transfers).where(
            p2p_transfers.c.state == "pending_claim",
            p2p_transfers.c.recipient_msisdn == subscriber.msisdn)
            .order_by(p2p_transfers.c.id)).all()
    return sum(1 for r in rows if _claim_one(ctx, subscriber, _p2p(r)))


def _claim_one(ctx: Context, subscriber: Subscriber, t: P2PTransfer) -> bool:
    now = ctx.clock.now_us()
    if t.expires_at is not None and now >= t.expires_at:
        return False  # the ledger refuses to post an expired hold; it goes back

    def before(conn: Connection) -> None:
        cur = conn.execute(locking(conn, select(p2p_transfers.c.state)
                                   .where(p2p_transfers.c.id == t.id))).scalar_one()
        if cur != "pending_claim":
            raise _NotClaimable
        guard_inflow(conn, subscriber.id, t.amount_fen, settings=ctx.settings)

    def record(conn: Connection, _results: list[TransferResult]) -> None:
        conn.execute(update(p2p_transfers).where(p2p_transfers.c.id == t.id).values(
            state="claimed", recipient_id=subscriber.id, resolved_at=now))

    reqs = [
        TransferRequest(id=f"p2p:{t.ref}:post", pending_id=f"p2p:{t.ref}", ledger=None,
                        flags=TransferFlags.POST_PENDING | TransferFlags.LINKED,
                        code=int(chart.TransferCode.P2P_CLAIMABLE), ref=f"p2p {t.ref} claimed"),
        TransferRequest(id=f"p2p:{t.ref}:claim", debit_account_id=claimable_account_id(ctx),
                        credit_account_id=subscriber.wallet_account_id, amount=t.amount_fen,
                        code=int(chart.TransferCode.P2P), ref=f"p2p {t.ref} claimed"),
    ]
    try:
        post_recorded(ctx.ledger, reqs, before=before, record=record)
    except (_NotClaimable, AlreadyAppliedError, le.PendingExpiredError,
            le.PendingAlreadyVoidedError, le.PendingAlreadyPostedError):
        return False
    except PaycellError as exc:  # the wallet cannot take it now (balance cap, closed)
        log.info("p2p %s not delivered to subscriber %s: %s", t.ref, subscriber.id, exc.code)
        return False
    return True


def deliver_claimable(ctx: Context, limit: int = 500) -> int:
    """Worker job: deliver waiting transfers whose number now has a wallet (a sign-up that
    did not claim them itself). Only numbers with an open wallet are looked at."""
    now = ctx.clock.now_us()
    t, s = p2p_transfers, subscribers
    with ctx.engine.connect() as conn:
        ids = conn.execute(
            select(s.c.id).join(t, t.c.recipient_msisdn == s.c.msisdn)
            .where(t.c.state == "pending_claim", t.c.expires_at > now, s.c.state != "closed")
            .group_by(s.c.id).limit(limit)).scalars().all()
    return sum(claim_pending_transfers(ctx, get_subscriber(ctx, sid)) for sid in ids)


def return_expired_transfers(ctx: Context, limit: int = 500) -> int:
    """Worker job: settle transfers nobody claimed in time. The ledger's expiry voids the
    hold (run here too, so that a return need not wait for the expiry job); this marks the
    transfer ``returned``, gives the sender's outflow usage back (day and month of the
    send) in the same transaction, then tells the sender by SMS. Each is returned once."""
    now = ctx.clock.now_us()
    with ctx.engine.connect() as conn:
        rows = [_p2p(r) for r in conn.execute(select(p2p_transfers).where(
            p2p_transfers.c.state == "pending_claim", p2p_transfers.c.expires_at <= now)
            .order_by(p2p_transfers.c.expires_at).limit(limit))]
    if not rows:
        return 0
    ctx.ledger.expire_holds()
    returned = 0
    for t in rows:
        hold = ctx.ledger.hold(f"p2p:{t.ref}")
        if hold is None or hold.status not in ("expired", "voided"):
            continue
        with ctx.engine.begin() as conn:
            done = conn.execute(update(p2p_transfers).where(
                p2p_transfers.c.id == t.id, p2p_transfers.c.state == "pending_claim")
                .values(state="returned", resolved_at=now)).rowcount
            if done:
                release_outflow(conn, t.sender_id, t.amount_fen, t.created_at)
                # The sender's text, recorded with the return: one exists iff it happened.
                dispatch = record_all(ctx.sms, conn, [(t.sender_msisdn, (
                    f"Your transfer of {format_amount(t.amount_fen)} CNY to "
                    f"{mask_msisdn(t.recipient_msisdn)} was not claimed in time and is back "
                    "in your paycell wallet."))])
        if done:
            returned += 1
            dispatch()
    return returned


def run_p2p_jobs(ctx: Context) -> int:
    """The worker's P2P job: deliveries, then returns."""
    return deliver_claimable(ctx) + return_expired_transfers(ctx)


def list_transfers(ctx: Context, subscriber_id: int, *, before_id: int | None = None,
                   limit: int = 50) -> list[P2PTransfer]:
    """The subscriber's own P2P transfers, sent and received, newest first. A recycled
    number's new owner sees only what reached their own wallet."""
    t = p2p_transfers
    stmt = (select(t).where(or_(t.c.sender_id == subscriber_id,
                                t.c.recipient_id == subscriber_id))
            .order_by(t.c.id.desc()).limit(limit))
    if before_id is not None:
        stmt = stmt.where(t.c.id < before_id)
    with ctx.engine.connect() as conn:
        return [_p2p(r) for r in conn.execute(stmt)]


# Money sent to a number before it had a wallet arrives as soon as the wallet opens.
hooks.after_open.append(claim_pending_transfers)
