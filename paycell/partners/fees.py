"""Partner fees made payable: the merchant-expansion fee and the monthly POS maintenance fee.

Both are found set-based (one query: joins and GROUP BY), then posted in chunks: per fee one
ledger transfer ``expense_channel:main`` -> ``partner_payable:<id>`` whose id is derived
from the business key, plus, in the same transaction, a ``partner_fees`` row and a settlement
item (``party_kind="partner"``) that part A's payouts pay. Re-running changes nothing: the
query leaves out fees that exist, and the ledger refuses a second transfer with the same id
(a concurrent run gets ``exists`` and records nothing). See docs/partners.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import BigInteger, Connection, and_, cast, exists, func, literal, or_, select
from sqlalchemy.orm import aliased

from paycell.context import Context
from paycell.funding.cash_common import AlreadyAppliedError, post_recorded
from paycell.ledger import TransferRequest, TransferResult
from paycell.ledger.chart import Code, TransferCode, system_account
from paycell.ledger.tables import transfers
from paycell.merchants.tables import merchants
from paycell.onsite.terminal_tables import terminals
from paycell.partners import rules
from paycell.partners.errors import MonthNotOverError
from paycell.partners.tables import fees, merchant_links, partners, terminal_links
from paycell.settlement import calendar as bizcal
from paycell.settlement.items import add_item

# Sales that count for the expansion condition: posted money reaching the merchant's payable.
SALE_CODES = (TransferCode.PURCHASE, TransferCode.POS_PURCHASE, TransferCode.ESCROW_CONFIRM,
              TransferCode.ECASH_CLEAR)
PENDING_FLAG = 2
CHUNK = 200
Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class Fee:
    partner_id: int
    kind: str
    amount_fen: int
    transfer_id: str
    business_date: str
    merchant_id: int | None = None
    month: str | None = None
    terminals: int | None = None


@dataclass
class FeeRun:
    """What one run made payable (``created``) and how many it found already done."""

    created: list[Fee] = field(default_factory=list)
    existing: int = 0
    candidates: int = 0

    @property
    def amount_fen(self) -> int:
        return sum(f.amount_fen for f in self.created)


def expansion_transfer_id(merchant_id: int) -> str:
    return f"partner-expansion:{merchant_id}"


def maintenance_transfer_id(partner_id: int, month: str) -> str:
    return f"partner-maintenance:{partner_id}:{month}"


def _post(ctx: Context, found: Sequence[tuple[Fee, int]], run: FeeRun,
          progress: Progress | None) -> None:
    """Post ``(fee, payable account)`` pairs in chunks, each chunk one transaction."""
    expense = system_account(ctx.ledger, Code.EXPENSE_CHANNEL).id
    now = ctx.clock.now_us()
    for start in range(0, len(found), CHUNK):
        chunk = found[start:start + CHUNK]
        by_id = {f.transfer_id: (f, acct) for f, acct in chunk}
        reqs = [TransferRequest(
            id=f.transfer_id, debit_account_id=expense, credit_account_id=acct,
            amount=f.amount_fen, code=int(TransferCode.PARTNER_EXPANSION_FEE
                                          if f.kind == "expansion_fee"
                                          else TransferCode.PARTNER_MAINTENANCE),
            ref=(f"expansion fee for merchant {f.merchant_id}" if f.kind == "expansion_fee"
                 else f"POS maintenance {f.month}: {f.terminals} terminals"))
            for f, acct in chunk]
        made: list[Fee] = []

        def record(conn: Connection, results: list[TransferResult],
                   by_id: dict[str, tuple[Fee, int]] = by_id,
                   made: list[Fee] = made) -> None:
            made.clear()
            for r in results:
                if r.status != "created":
                    continue
                f, acct = by_id[r.id]
                conn.execute(fees.insert().values(
                    partner_id=f.partner_id, kind=f.kind, merchant_id=f.merchant_id,
                    month=f.month, terminals=f.terminals, amount_fen=f.amount_fen,
                    business_date=f.business_date, transfer_id=f.transfer_id, created_at=now))
                add_item(conn, party_kind="partner", party_id=f.partner_id, account_id=acct,
                         business_date=f.business_date, kind=f.kind, amount_fen=f.amount_fen,
                         source_ref=f.transfer_id, now_us=now)
                made.append(f)

        try:
            post_recorded(ctx.ledger, reqs, record=record)
        except AlreadyAppliedError:
            made.clear()
        run.created.extend(made)
        run.existing += len(chunk) - len(made)
        if progress is not None:
            progress(min(start + CHUNK, len(found)), len(found))


# -- merchant-expansion fee ---------------------------------------------------------------------
def expansion_candidates(conn: Connection, now_us: int, days: int, min_sales: int) -> list[Any]:
    """Merchants whose expansion condition holds now and whose fee is not paid yet: attached
    to an active partner, active, activated at least ``days`` days ago, and at least
    ``min_sales`` posted sales credited to their payable account (one GROUP BY). A partner's
    own ``expansion_days`` / ``expansion_min_txns``, when set, replace the two."""
    link, p, m, t = merchant_links, partners, merchants, transfers
    sales = func.count(t.c.seq)
    # BIGINT arithmetic: days x 86,400,000,000 us overflows PostgreSQL's integer.
    need_us = (cast(func.coalesce(p.c.expansion_days, days), BigInteger)
               * literal(rules.DAY_US, BigInteger))
    need_sales = func.coalesce(p.c.expansion_min_txns, min_sales)
    paid = exists().where(fees.c.kind == "expansion_fee", fees.c.merchant_id == link.c.merchant_id)
    stmt = (
        select(link.c.merchant_id, link.c.partner_id, p.c.expansion_fee_fen,
               p.c.payable_account_id, sales.label("sales"))
        .select_from(link.join(p, p.c.id == link.c.partner_id)
                     .join(m, m.c.id == link.c.merchant_id)
                     .join(t, t.c.credit_account_id == m.c.payable_account_id))
        .where(link.c.detached_at.is_(None), p.c.state == "active",
               m.c.state == "active", m.c.activated_at <= now_us - need_us,
               t.c.code.in_([int(c) for c in SALE_CODES]), t.c.timestamp <= now_us,
               t.c.flags.op("&")(PENDING_FLAG) == 0, ~paid)
        .group_by(link.c.merchant_id, link.c.partner_id, p.c.expansion_fee_fen,
                  p.c.payable_account_id, p.c.expansion_min_txns)
        .having(sales >= need_sales)
        .order_by(link.c.merchant_id))
    return list(conn.execute(stmt))


def check_expansion(ctx: Context, *, progress: Progress | None = None) -> FeeRun:
    """Make the expansion fee payable for every merchant whose condition first holds now
    (``partner_expansion_days`` active, ``partner_expansion_min_txns`` sales), to the
    partner it is attached to, at that partner's current fee. Exactly once per merchant,
    ever (the transfer id is ``partner-expansion:<merchant id>``): idempotent, safe to run
    concurrently."""
    s = ctx.settings
    now = ctx.clock.now_us()
    day = bizcal.business_date(now, s.clearing_cutoff).isoformat()
    with ctx.engine.connect() as conn:
        rows = expansion_candidates(conn, now, s.partner_expansion_days,
                                    s.partner_expansion_min_txns)
    found = [(Fee(r.partner_id, "expansion_fee", int(r.expansion_fee_fen),
                  expansion_transfer_id(r.merchant_id), day, merchant_id=r.merchant_id),
              int(r.payable_account_id)) for r in rows]
    run = FeeRun(candidates=len(found))
    _post(ctx, found, run, progress)
    return run


# -- POS maintenance ----------------------------------------------------------------------------
def counted_terminals(start_us: int, end_us: int) -> Any:
    """The statement of ``(partner_id, terminal_pk)`` rows that count for the month
    ``[start_us, end_us)``: the terminal was attached to the partner at some moment in the
    month, and this attachment is the terminal's last one begun before the month ended (a
    terminal moved mid-month counts once, for its new partner); it was registered before
    the month ended and not retired before it began."""
    a, t = terminal_links, terminals
    later = aliased(terminal_links)
    newer = exists().where(later.c.terminal_pk == a.c.terminal_pk, later.c.id > a.c.id,
                           later.c.attached_at < end_us)
    return (select(a.c.partner_id, a.c.terminal_pk)
            .select_from(a.join(t, t.c.id == a.c.terminal_pk))
            .where(a.c.attached_at < end_us,
                   or_(a.c.detached_at.is_(None), a.c.detached_at > start_us),
                   t.c.created_at < end_us,
                   ~and_(t.c.state == "retired", t.c.updated_at < start_us), ~newer)
            .distinct())


def accrue_maintenance(ctx: Context, month: str, *,
                       progress: Progress | None = None) -> FeeRun:
    """Accrue ``pos_maintenance_fen`` per counted terminal for ``month`` (``YYYY-MM``), one
    transfer per active partner with terminals (``partner-maintenance:<id>:<month>``),
    dated the month's last day. Refused: ``month_invalid``, ``month_not_over``. Re-running
    a month changes nothing (a partner accrued once is never accrued again for it)."""
    year, mon = rules.month(month)
    label = rules.month_text(year, mon)
    start, end = bizcal.month_window(year, mon)
    if ctx.clock.now_us() < end:
        raise MonthNotOverError(f"{label} is not over yet; accrue it after it ends",
                                month=label)
    per = ctx.settings.pos_maintenance_fen
    day = rules.last_day(year, mon).isoformat()
    counted = counted_terminals(start, end).subquery()
    n = func.count(counted.c.terminal_pk)
    done = exists().where(fees.c.kind == "maintenance", fees.c.month == label,
                          fees.c.partner_id == partners.c.id)
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            select(partners.c.id, partners.c.payable_account_id, n.label("n"))
            .select_from(partners.join(counted, counted.c.partner_id == partners.c.id))
            .where(partners.c.state == "active", ~done)
            .group_by(partners.c.id, partners.c.payable_account_id)
            .order_by(partners.c.id)).all()
    found = [(Fee(r.id, "maintenance", rules.maintenance_fen(int(r.n), per),
                  maintenance_transfer_id(r.id, label), day, month=label, terminals=int(r.n)),
              int(r.payable_account_id)) for r in rows if r.n and per > 0]
    run = FeeRun(candidates=len(found))
    _post(ctx, found, run, progress)
    return run


def previous_month_label(today: date) -> str:
    return rules.month_text(*rules.previous_month(today))
