"""Daily clearing (清分) of a business date for every merchant (docs/settlement.md).

Reads the posted ledger transfers that touched merchant payable accounts in the date's
window (set-based: one GROUP BY for sales, one for refunds, one for card-funded orders),
applies each merchant's commission rule (``rules.py``, pure), and posts per merchant one
linked chain: commission returned on refunds (revenue -> payable), the commission (payable
-> revenue), approved deductions (payable -> fees), and the card-fee shares (revenue ->
issuer / network payables). In the same transaction it records the merchant's figures
(``settlement_clearings``) and the net as a settlement item (``kind="clearing"``). Transfer
ids derive from the date and merchant, so clearing a date again moves nothing; a merchant
whose payable cannot take its commission is left out ("blocked") and retried next run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Connection, and_, func, literal, select

from paycell.context import Context
from paycell.funding.cash_common import insert_ignore
from paycell.funding.tables import topups
from paycell.ledger import TransferFlags, TransferRequest, TransferResult
from paycell.ledger.chart import Code, TransferCode, system_account
from paycell.ledger.tables import transfers
from paycell.merchants.tables import merchants
from paycell.money import allocate
from paycell.payments.tables import payment_orders
from paycell.settlement.calendar import window
from paycell.settlement.commissions import rules_in_force
from paycell.settlement.errors import BusinessDateOpenError
from paycell.settlement.items import add_item
from paycell.settlement.rules import NONE, Rule, card_shares, commission
from paycell.settlement.tables import clearings, days, deductions

SALES = (TransferCode.PURCHASE, TransferCode.POS_PURCHASE, TransferCode.ESCROW_CONFIRM,
         TransferCode.ECASH_CLEAR)
REFUNDS = (TransferCode.REFUND, TransferCode.POS_REFUND, TransferCode.ESCROW_REFUND)
POSTED = (0, int(TransferFlags.LINKED), int(TransferFlags.POST_PENDING),
          int(TransferFlags.POST_PENDING | TransferFlags.LINKED))  # posted money, no holds
CHUNK = 200  # merchants per database transaction


@dataclass
class Figures:
    """A merchant's day as read from the ledger."""

    merchant_id: int
    account_id: int
    sales_count: int = 0
    gross_fen: int = 0
    refund_count: int = 0
    refunds_fen: int = 0
    card_fen: dict[str, int] = field(default_factory=dict)  # issuing bank -> card-funded gross
    deductions_fen: int = 0


@dataclass(frozen=True)
class Accounts:
    revenue: int
    fees: int
    issuer: Callable[[str], int]
    network: int


@dataclass
class Plan:
    """What clearing posts and records for one merchant."""

    figures: Figures
    rule_kind: str
    rule_id: int | None
    commission_fen: int
    returned_fen: int
    card_fee_fen: int
    net_fen: int
    requests: list[TransferRequest]


@dataclass
class DayResult:
    business_date: str
    merchants: int
    cleared_now: int
    blocked: list[int]
    gross_fen: int
    refunds_fen: int
    commission_fen: int
    net_fen: int


def plan_merchant(f: Figures, rule: Rule, rule_id: int | None, on: str, acc: Accounts,
                  *, month_before_fen: int = 0, split: str = "70/20/10") -> Plan:
    """Pure: a merchant's commission, card-fee shares, net and transfers for a day."""
    c = commission(rule, gross_fen=f.gross_fen, sales=f.sales_count,
                   refunds_fen=f.refunds_fen, month_before_fen=month_before_fen)
    net = f.gross_fen - f.refunds_fen - c.commission_fen + c.returned_fen - f.deductions_fen
    pay = f.account_id
    key = f"clr:{on}:m{f.merchant_id}"
    legs: list[tuple[str, int, int, int, TransferCode]] = [
        ("return", acc.revenue, pay, c.returned_fen, TransferCode.COMMISSION_RETURN),
        ("commission", pay, acc.revenue, c.commission_fen, TransferCode.CLEARING_COMMISSION),
        ("deduction", pay, acc.fees, f.deductions_fen, TransferCode.DEDUCTION),
    ]
    card_fee = 0
    banks = sorted(b for b, v in f.card_fen.items() if v > 0)
    if banks and c.commission_fen and f.gross_fen:
        card_total = min(sum(f.card_fen[b] for b in banks), f.gross_fen)
        weights = [f.card_fen[b] for b in banks] + [f.gross_fen - card_total]
        fees = allocate(c.commission_fen, weights)[:-1]
        for bank, fee in zip(banks, fees, strict=True):
            issuer, _acquirer, network = card_shares(fee, split)
            card_fee += fee
            legs.append((f"issuer:{bank}", acc.revenue, acc.issuer(bank), issuer,
                         TransferCode.CARD_FEE_SHARE))
            legs.append((f"network:{bank}", acc.revenue, acc.network, network,
                         TransferCode.CARD_FEE_SHARE))
    reqs = [TransferRequest(f"{key}:{name}", dr, cr, amount, code=int(code),
                            ref=f"clearing {on} merchant {f.merchant_id}: {name}")
            for name, dr, cr, amount, code in legs if amount > 0]
    reqs = [TransferRequest(r.id, r.debit_account_id, r.credit_account_id, r.amount,
                            code=r.code, ref=r.ref,
                            flags=TransferFlags.LINKED if i < len(reqs) - 1 else 0)
            for i, r in enumerate(reqs)]
    return Plan(f, rule.kind, rule_id, c.commission_fen, c.returned_fen, card_fee, net, reqs)


def gather(conn: Connection, start_us: int, end_us: int, on: str) -> dict[int, Figures]:
    """Every merchant's sales, refunds, card-funded sales and deductions of the window."""
    t, m = transfers, merchants
    out: dict[int, Figures] = {}
    in_window = and_(t.c.timestamp >= start_us, t.c.timestamp < end_us,
                     t.c.flags.in_(POSTED))

    def fig(mid: int, acct: int) -> Figures:
        return out.setdefault(mid, Figures(mid, acct))

    sales = (select(m.c.id, m.c.payable_account_id, func.count(), func.sum(t.c.amount))
             .select_from(t.join(m, m.c.payable_account_id == t.c.credit_account_id))
             .where(in_window, t.c.code.in_([int(c) for c in SALES]))
             .group_by(m.c.id, m.c.payable_account_id))
    for mid, acct, n, total in conn.execute(sales):
        f = fig(mid, acct)
        f.sales_count, f.gross_fen = int(n), int(total or 0)
    refunds = (select(m.c.id, m.c.payable_account_id, func.count(), func.sum(t.c.amount))
               .select_from(t.join(m, m.c.payable_account_id == t.c.debit_account_id))
               .where(in_window, t.c.code.in_([int(c) for c in REFUNDS]))
               .group_by(m.c.id, m.c.payable_account_id))
    for mid, acct, n, total in conn.execute(refunds):
        f = fig(mid, acct)
        f.refund_count, f.refunds_fen = int(n), int(total or 0)
    o = payment_orders
    for suffix, kind in (("", "direct"), (":release", "escrow")):
        card = (select(o.c.merchant_id, topups.c.partner, func.sum(t.c.amount))
                .select_from(o.join(topups, topups.c.id == o.c.funding_ref)
                             .join(t, t.c.id == literal("pay:") + o.c.trade_no
                                   + literal(suffix)))
                .where(o.c.paid_via == "card", o.c.kind == kind, o.c.paid_at < end_us,
                       in_window, t.c.code.in_([int(c) for c in SALES]))
                .group_by(o.c.merchant_id, topups.c.partner))
        for mid, bank, total in conn.execute(card):
            if mid in out:
                out[mid].card_fen[bank] = out[mid].card_fen.get(bank, 0) + int(total or 0)
    d = deductions
    ded = (select(d.c.merchant_id, m.c.payable_account_id, func.sum(d.c.amount_fen))
           .select_from(d.join(m, m.c.id == d.c.merchant_id))
           .where(d.c.business_date == on, m.c.payable_account_id.is_not(None))
           .group_by(d.c.merchant_id, m.c.payable_account_id))
    for mid, acct, total in conn.execute(ded):
        fig(mid, acct).deductions_fen = int(total or 0)
    return out


def _month_before(conn: Connection, day: date) -> dict[int, int]:
    first = day.replace(day=1).isoformat()
    c = clearings
    rows = conn.execute(select(c.c.merchant_id, func.sum(c.c.gross_fen))
                        .where(c.c.business_date >= first, c.c.business_date < day.isoformat())
                        .group_by(c.c.merchant_id))
    return {mid: int(total or 0) for mid, total in rows}


def _accounts(ctx: Context) -> Accounts:
    led = ctx.ledger
    cache: dict[str, int] = {}

    def issuer(bank: str) -> int:
        if bank not in cache:
            cache[bank] = system_account(led, Code.FEE_SHARE_PAYABLE, f"issuer:{bank}").id
        return cache[bank]

    return Accounts(system_account(led, Code.REVENUE_COMMISSION).id,
                    system_account(led, Code.REVENUE_FEES).id, issuer,
                    system_account(led, Code.FEE_SHARE_PAYABLE,
                                   f"network:{ctx.settings.card_network}").id)


def check_over(ctx: Context, day: date) -> tuple[int, int]:
    """The date's window; :class:`BusinessDateOpenError` unless cut-off + grace is past."""
    start, end = window(day, ctx.settings.clearing_cutoff)
    ready = end + ctx.settings.clearing_grace_s * 1_000_000
    if ctx.clock.now_us() < ready:
        raise BusinessDateOpenError(
            f"business date {day} is not over yet: it can be cleared from its cut-off plus "
            f"{ctx.settings.clearing_grace_s} s", business_date=day.isoformat(), ready_at_us=ready)
    return start, end


def clear_date(ctx: Context, day: date, *, actor: str = "system",
               progress: Callable[[int, int], None] | None = None) -> DayResult:
    """Clear business date ``day`` for every merchant. Idempotent: merchants cleared before
    are skipped and their transfers exist. Raises :class:`BusinessDateOpenError`."""
    start, end = check_over(ctx, day)
    on = day.isoformat()
    with ctx.engine.connect() as conn:
        figures = gather(conn, start, end, on)
        in_force = rules_in_force(conn, on)
        month = _month_before(conn, day)
        done = {r[0] for r in conn.execute(select(clearings.c.merchant_id)
                                           .where(clearings.c.business_date == on))}
    acc = _accounts(ctx)
    todo = [f for mid, f in sorted(figures.items()) if mid not in done]
    plans = []
    for f in todo:
        rule_id, rule = in_force.get(f.merchant_id, (None, NONE))
        plans.append(plan_merchant(f, rule, rule_id, on, acc,
                                   month_before_fen=month.get(f.merchant_id, 0),
                                   split=ctx.settings.card_fee_split))
    blocked: list[int] = []
    cleared_now = 0
    for i in range(0, len(plans), CHUNK):
        chunk_blocked, chunk_cleared = _post_chunk(ctx, plans[i:i + CHUNK], on)
        blocked += chunk_blocked
        cleared_now += chunk_cleared
        if progress is not None:
            progress(min(i + CHUNK, len(plans)), len(plans))
    return _close_day(ctx, on, actor, cleared_now, blocked)


def _post_chunk(ctx: Context, plans: list[Plan], on: str) -> tuple[list[int], int]:
    """Post a chunk of merchants' plans: (merchants blocked, merchants this call cleared;
    a merchant another run cleared meanwhile counts in neither)."""
    now = ctx.clock.now_us()
    reqs = [r for p in plans for r in p.requests]
    blocked: list[int] = []
    cleared = [0]

    def record(conn: Connection, results: list[TransferResult]) -> None:
        blocked.clear()
        cleared[0] = 0
        pos = 0
        for p in plans:
            mine = results[pos:pos + len(p.requests)]
            pos += len(p.requests)
            if any(not r.ok for r in mine):
                blocked.append(p.figures.merchant_id)
                continue
            cleared[0] += _record(conn, p, on, now)

    if reqs:
        ctx.ledger.post(reqs, hook=record)
    else:
        with ctx.engine.begin() as conn:
            record(conn, [])
    return blocked, cleared[0]


def _record(conn: Connection, p: Plan, on: str, now: int) -> bool:
    """Record the merchant's cleared day and its item; False if a concurrent run did."""
    f = p.figures
    fresh = insert_ignore(
        conn, clearings, business_date=on, merchant_id=f.merchant_id, rule_kind=p.rule_kind,
        rule_id=p.rule_id, sales_count=f.sales_count, gross_fen=f.gross_fen,
        refund_count=f.refund_count, refunds_fen=f.refunds_fen, commission_fen=p.commission_fen,
        commission_returned_fen=p.returned_fen, deductions_fen=f.deductions_fen,
        card_fee_fen=p.card_fee_fen, net_fen=p.net_fen, created_at=now)
    if p.net_fen != 0:
        add_item(conn, party_kind="merchant", party_id=f.merchant_id, account_id=f.account_id,
                 business_date=on, kind="clearing", amount_fen=p.net_fen,
                 source_ref=f"clearing:{on}:m{f.merchant_id}", now_us=now)
    return fresh


def _close_day(ctx: Context, on: str, actor: str, cleared_now: int,
               blocked: list[int]) -> DayResult:
    c = clearings
    with ctx.engine.begin() as conn:
        n, gross, refunds, comm, net = conn.execute(
            select(func.count(), func.sum(c.c.gross_fen), func.sum(c.c.refunds_fen),
                   func.sum(c.c.commission_fen - c.c.commission_returned_fen),
                   func.sum(c.c.net_fen)).where(c.c.business_date == on)).one()
        values = {"merchants": int(n), "blocked": len(blocked), "gross_fen": int(gross or 0),
                  "refunds_fen": int(refunds or 0), "commission_fen": int(comm or 0),
                  "net_fen": int(net or 0)}
        old = conn.execute(select(days).where(days.c.business_date == on)).first()
        if old is None:
            insert_ignore(conn, days, business_date=on, cleared_by=actor,
                          cleared_at=ctx.clock.now_us(), **values)
        elif any(getattr(old, k) != v for k, v in values.items()):
            conn.execute(days.update().where(days.c.business_date == on).values(**values))
    return DayResult(on, values["merchants"], cleared_now, blocked, values["gross_fen"],
                     values["refunds_fen"], values["commission_fen"], values["net_fen"])


def clearings_of(ctx: Context, *, business_date: str | None = None,
                 merchant_id: int | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Cleared figures, by date then merchant."""
    c = clearings
    stmt = select(c).order_by(c.c.business_date.desc(), c.c.merchant_id).limit(limit)
    if business_date:
        stmt = stmt.where(c.c.business_date == business_date)
    if merchant_id is not None:
        stmt = stmt.where(c.c.merchant_id == merchant_id)
    with ctx.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def day_of(ctx: Context, business_date: str) -> dict[str, Any] | None:
    with ctx.engine.connect() as conn:
        row = conn.execute(select(days).where(days.c.business_date == business_date)).first()
    return None if row is None else dict(row._mapping)


def iter_rows(ctx: Context, business_date: str) -> Iterable[dict[str, Any]]:
    """The date's clearing rows, streamed (for the report file)."""
    c = clearings
    with ctx.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=1000).execute(
            select(c, merchants.c.name).join(merchants, merchants.c.id == c.c.merchant_id)
            .where(c.c.business_date == business_date).order_by(c.c.merchant_id))
        for r in result:
            yield dict(r._mapping)
