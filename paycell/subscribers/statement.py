"""What a subscriber sees of their wallet: the balance with limits, and the statement.

Read-only, straight from the ledger's tables. A statement line is one transfer that touched
the wallet, newest first; a hold's settlement (post, void, expiry) is not a line of its own
but the hold line's ``status`` (and ``settled_fen`` when posted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select

from paycell.context import Context
from paycell.errors import InvalidRequestError
from paycell.ledger.api import decode_cursor, encode_cursor
from paycell.ledger.chart import Code, TransferCode
from paycell.ledger.model import TransferFlags
from paycell.ledger.tables import accounts, holds, transfers
from paycell.subscribers.errors import SubscriberError
from paycell.subscribers.limits import balance_headroom_fen, used_fen
from paycell.subscribers.service import Subscriber, mask_msisdn
from paycell.subscribers.tables import subscribers
from paycell.subscribers.tiers import Tier, tier_limits

# Friendly statement types: the transfer code's name in lower case (topup_bank, p2p, ...).
TYPES: dict[int, str] = {int(c): c.name.lower() for c in TransferCode}
CODES_BY_TYPE: dict[str, int] = {v: k for k, v in TYPES.items()}
COUNTERPARTY: dict[int, str] = {
    Code.WALLET: "wallet", Code.CARD_ECASH: "card", Code.MERCHANT_PAYABLE: "merchant",
    Code.PARTNER_PAYABLE: "partner", Code.MERCHANT_DEPOSIT: "merchant",
    Code.UNCLAIMED: "unclaimed", Code.AGENT_FLOAT: "agent", Code.CUSTODY_RESERVE: "platform",
    Code.BANK_CLEARING: "bank", Code.CARRIER_RECEIVABLE: "carrier",
    Code.REVENUE_COMMISSION: "platform", Code.REVENUE_FEES: "platform",
}
RESOLVING = TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING


class StatementTypeInvalidError(SubscriberError, InvalidRequestError):
    code = "statement_type_invalid"


@dataclass(frozen=True)
class Balance:
    balance_fen: int
    available_fen: int
    pending_fen: int
    incoming_pending_fen: int
    tier: Tier
    daily_used_fen: int
    monthly_used_fen: int
    balance_headroom_fen: int


@dataclass(frozen=True)
class Line:
    id: str
    type: str
    amount_fen: int
    counterparty_type: str
    counterparty: str | None
    description: str | None
    created_at: int
    status: str
    settled_fen: int | None


def balance(ctx: Context, sub: Subscriber) -> Balance:
    """The wallet's posted balance, what is available (less holds out), holds in and out,
    the tier's limits and how much of them is used today and this month (CST)."""
    tier = tier_limits(ctx.settings.kyc_tiers_json, sub.tier)
    acct = ctx.ledger.account(sub.wallet_account_id)
    with ctx.engine.connect() as conn:
        day, month = used_fen(conn, sub.id, ctx.clock.now_us())
        headroom = balance_headroom_fen(conn, sub.wallet_account_id, tier)
    return Balance(acct.balance, acct.available, acct.debits_pending, acct.credits_pending,
                   tier, day, month, max(0, headroom))


def check_types(types: list[str]) -> list[int]:
    unknown = [t for t in types if t not in CODES_BY_TYPE]
    if unknown:
        raise StatementTypeInvalidError(f"unknown statement type {unknown[0]!r}",
                                        known=sorted(CODES_BY_TYPE))
    return [CODES_BY_TYPE[t] for t in types]


def statement(
    ctx: Context, sub: Subscriber, *, types: list[str] | None = None,
    since_us: int | None = None, until_us: int | None = None, cursor: str | None = None,
    limit: int = 20,
) -> tuple[list[Line], str | None]:
    """One page of the wallet's statement, newest first, and the cursor of the next page
    (None at the end). ``types`` filters by friendly type; ``since_us`` (inclusive) and
    ``until_us`` (exclusive) by time. StatementTypeInvalidError, CursorInvalidError."""
    wallet = sub.wallet_account_id
    t = transfers
    cond = [or_(t.c.debit_account_id == wallet, t.c.credit_account_id == wallet),
            t.c.flags.op("&")(int(RESOLVING)) == 0]
    if types:
        cond.append(t.c.code.in_(check_types(types)))
    if cursor:
        cond.append(t.c.seq < decode_cursor(cursor, wallet))
    if since_us is not None:
        cond.append(t.c.timestamp >= since_us)
    if until_us is not None:
        cond.append(t.c.timestamp < until_us)
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(t).where(and_(*cond)).order_by(t.c.seq.desc())
                            .limit(limit + 1)).all()
        page = rows[:limit]
        lines = _lines(conn, wallet, page)
    more = len(rows) > limit
    return lines, encode_cursor(wallet, page[-1].seq) if more else None


def _signed(amount: int | None, outgoing: bool) -> int | None:
    return None if amount is None else -amount if outgoing else amount


def _lines(conn: Any, wallet: int, rows: Sequence[Any]) -> list[Line]:
    others = {r.credit_account_id if r.debit_account_id == wallet else r.debit_account_id
              for r in rows}
    codes = dict(conn.execute(select(accounts.c.id, accounts.c.code)
                              .where(accounts.c.id.in_(others))).all()) if others else {}
    owners = dict(conn.execute(select(subscribers.c.wallet_account_id, subscribers.c.msisdn)
                               .where(subscribers.c.wallet_account_id.in_(others))).all()
                  ) if others else {}
    hold_ids = [r.id for r in rows if r.flags & TransferFlags.PENDING]
    hold_rows = conn.execute(select(holds.c.transfer_id, holds.c.status, holds.c.resolved_by)
                             .where(holds.c.transfer_id.in_(hold_ids))).all() if hold_ids else []
    status = {h.transfer_id: (h.status, h.resolved_by) for h in hold_rows}
    posts = [rb for st, rb in status.values() if st == "posted" and rb]
    settled = dict(conn.execute(select(transfers.c.id, transfers.c.amount)
                                .where(transfers.c.id.in_(posts))).all()) if posts else {}
    out = []
    for r in rows:
        outgoing = r.debit_account_id == wallet
        other = r.credit_account_id if outgoing else r.debit_account_id
        st, resolved_by = status.get(r.id, ("posted", None))
        msisdn = owners.get(other)
        out.append(Line(
            id=r.id, type=TYPES.get(r.code, "other"),
            amount_fen=-r.amount if outgoing else r.amount,
            counterparty_type=COUNTERPARTY.get(codes.get(other, -1), "other"),
            counterparty=mask_msisdn(msisdn) if msisdn else None, description=r.ref,
            created_at=r.timestamp, status=st,
            settled_fen=_signed(settled.get(resolved_by or ""), outgoing)))
    return out
