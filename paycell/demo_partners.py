"""The demo world's part on channel partners, their merchants and terminals, fees accrued.

Two partners, registered by ``demo-maker`` and approved by ``demo-checker``: Pearl Delta
Channel Services (the coffee shop, the ticket office and their POS terminals; the
settings' expansion rule, 90 days and 30 sales) and Campus Pay Partners (the book store)
on a pilot rule (active 0 days, 3 sales), so that the 3 demo days can show an expansion
fee paid. The month before the demo's clock is accrued (as the worker would on
the 1st); the demo's own month is shown as a statement, its maintenance accrues when it
ends. Idempotent: a second load finds everything done and changes nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from rich.console import Console
from sqlalchemy import select

from paycell.clock import ManualClock
from paycell.context import Context
from paycell.errors import ConflictError
from paycell.merchants.demo import DEMO_MERCHANTS
from paycell.merchants.tables import merchants
from paycell.money import format_amount
from paycell.onsite.terminals import list_terminals
from paycell.operators import approvals
from paycell.operators.service import ensure_operator
from paycell.partners import fees, statements
from paycell.partners import service as ps
from paycell.partners.tables import partners
from paycell.settlement import calendar as bizcal

# (name, expansion fee fen, days, sales, bank account, demo merchant slugs)
DEMO_PARTNERS = (
    ("Pearl Delta Channel Services", 50_000, None, None, "6222020200112233",
     ("coffee", "tickets")),
    ("Campus Pay Partners", 30_000, 0, 3, "6222020200445566", ("books",)),
)


@dataclass
class PartnersDemo:
    partners: list[tuple[str, str, int, int, int]] = field(default_factory=list)
    # (code, name, expansion fee fen, merchants, terminals)
    expansion_fees: list[tuple[str, int, int]] = field(default_factory=list)
    # (partner code, merchant id, fen): made payable by this load
    accrued_month: str = ""
    maintenance_fen: int = 0
    month: str = ""
    statement: list[statements.Totals] = field(default_factory=list)
    report: Path | None = None


def _partner(ctx: Context, name: str, fee: int, days: int | None, sales: int | None,
             account: str) -> ps.Partner:
    maker = ensure_operator(ctx.engine, ctx.clock, "demo-maker", "operator")
    checker = ensure_operator(ctx.engine, ctx.clock, "demo-checker", "operator")
    with ctx.engine.connect() as conn:
        pid = conn.execute(select(partners.c.id).where(partners.c.name == name)).scalar()
    if pid is None:
        p, a = ps.register_partner(ctx, maker, ps.PartnerApplication(
            name=name, contact_phone="+8675588880000", bank_name="ICBC Shenzhen",
            bank_account_holder=f"{name} Co., Ltd.", bank_account_number=account,
            expansion_fee_fen=fee, expansion_days=days, expansion_min_txns=sales),
            "demo channel partner")
        approvals.approve(ctx, checker, a.id)
        pid = p.id
    return ps.get_partner(ctx, pid)


def load_partners_demo(ctx: Context, clock: ManualClock, start: datetime,
                       out_dir: Path | None = None) -> PartnersDemo | None:
    """Add this part to the demo world. ``start`` is midnight (CST) of the demo's first
    day; ``clock`` is ``ctx``'s, set half an hour after the last traffic. Idempotent."""
    d = PartnersDemo()
    op = ensure_operator(ctx.engine, ctx.clock, "demo-maker", "operator")
    names = {m.slug: m.name for m in DEMO_MERCHANTS}
    with ctx.engine.connect() as conn:
        by_name = {r.name: (r.id, r.code) for r in conn.execute(
            select(merchants.c.id, merchants.c.code, merchants.c.name)
            .where(merchants.c.name.in_(list(names.values()))))}
    codes: dict[int, str] = {}
    for name, fee, days, sales, account, slugs in DEMO_PARTNERS:
        p = _partner(ctx, name, fee, days, sales, account)
        codes[p.id] = p.code
        n_merchants = n_terminals = 0
        for slug in slugs:
            if names[slug] not in by_name:
                continue
            mid, mcode = by_name[names[slug]]
            with contextlib.suppress(ConflictError):  # attached elsewhere by hand: leave it
                ps.attach_merchant(ctx, op, p.id, mcode)
            n_merchants += 1
            for t in list_terminals(ctx, merchant_id=mid):
                if t.state != "retired":
                    with contextlib.suppress(ConflictError):
                        ps.attach_terminal(ctx, op, p.id, t.terminal_id)
                    n_terminals += 1
        d.partners.append((p.code, p.name, p.expansion_fee_fen, n_merchants, n_terminals))
    d.expansion_fees = [(codes.get(f.partner_id, "?"), f.merchant_id or 0, f.amount_fen)
                        for f in fees.check_expansion(ctx).created]
    today = bizcal.business_date(ctx.clock.now_us())
    d.accrued_month = fees.previous_month_label(today)
    d.maintenance_fen = fees.accrue_maintenance(ctx, d.accrued_month).amount_fen
    d.month = f"{today.year:04d}-{today.month:02d}"
    d.statement = statements.month_summary(ctx, d.month)
    d.report = statements.write_summary(ctx, d.month, d.statement)
    return d


def print_partners_summary(console: Console, d: PartnersDemo) -> None:
    """The summary's part on channel partners, their merchants and terminals, fees accrued."""
    console.print("[bold]Channel partners[/]")
    for code, name, fee, n_m, n_t in d.partners:
        console.print(f"  {code} {name}: {n_m} merchants, {n_t} POS terminals, expansion fee "
                      f"{format_amount(fee)} CNY per merchant")
    for code, mid, fen in d.expansion_fees:
        console.print(f"  expansion fee paid to {code} for merchant {mid}: "
                      f"{format_amount(fen)} CNY")
    console.print(f"  POS maintenance accrued for {d.accrued_month}: "
                  f"{format_amount(d.maintenance_fen)} CNY (the demo's terminals are new: "
                  f"{d.month} accrues when it ends)")
    for t in d.statement:
        console.print(f"  {d.month} {t.code}: accrued {format_amount(t.accrued_fen)} CNY, "
                      f"paid out {format_amount(t.paid_out_fen)} CNY, {t.terminals} terminals "
                      "counting")
    if d.report is not None:
        console.print(f"  report {d.report}")
