"""The demo world's part on commission rules, cleared business days, payouts and a returned one.

Rules for the demo merchants (one of each kind where it fits; the transit operator none),
approved by a second operator; the three demo days cleared; the payout batch of the last
day; the bank's result (simulated) with one return; the party's hold cleared after a fix.
Every step is idempotent, so loading the demo twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import select

from paycell.clock import ManualClock
from paycell.context import Context
from paycell.gateways import payout_sim
from paycell.merchants.tables import merchants
from paycell.money import format_amount
from paycell.operators import approvals
from paycell.operators.service import ensure_operator
from paycell.settlement import clearing, commissions, payouts
from paycell.settlement.calendar import CST
from paycell.settlement.errors import PayoutResultConflictError
from paycell.settlement.payouts import reference_for

DAYS = 3
RULES: dict[str, tuple[str, dict[str, Any]]] = {  # merchant name -> (kind, params)
    "Harbour Coffee": ("percentage", {"bp": 100}),
    "Inkwell Books Online": ("tiered", {"tiers": [{"up_to_fen": 10_000_000, "bp": 60},
                                                  {"up_to_fen": None, "bp": 30}]}),
    "Pearl River Tickets": ("discount", {"paid_bp": 8_000, "settle_bp": 6_000}),
    "Pearl Metro Line 11": ("none", {}),
}
RETURNED = "Pearl River Tickets"


@dataclass
class SettlementDemo:
    days: list[dict[str, int | str]] = field(default_factory=list)
    rules: dict[str, str] = field(default_factory=dict)
    batch_date: str = ""
    payouts: int = 0
    total_fen: int = 0
    returned: str | None = None
    hold_cleared: bool = False
    payout_file: str = ""


def load_settlement_demo(ctx: Context, clock: ManualClock, start: datetime,
                         out_dir: Path | None = None) -> SettlementDemo | None:
    """Add this part to the demo world. ``start`` is midnight (CST) of the demo's first
    day; ``clock`` is ``ctx``'s, set half an hour after the last traffic. Idempotent."""
    first = start.astimezone(CST).date()
    demo_days = [first + timedelta(days=i) for i in range(DAYS)]
    ready = datetime.combine(demo_days[-1] + timedelta(days=1), datetime.min.time(), CST) \
        + timedelta(seconds=ctx.settings.clearing_grace_s + 60)
    if clock.now_us() < int(ready.timestamp() * 1_000_000):
        clock.set(ready)
    maker = ensure_operator(ctx.engine, ctx.clock, "demo-maker", "operator")
    checker = ensure_operator(ctx.engine, ctx.clock, "demo-checker", "operator")
    with ctx.engine.connect() as conn:
        ids = {r.name: r.id for r in conn.execute(select(merchants.c.id, merchants.c.name)
                                                  .where(merchants.c.name.in_(RULES)))}
    out = SettlementDemo()
    for name, (kind, params) in RULES.items():
        if name not in ids:
            continue
        out.rules[name] = kind
        if commissions.rule_history(ctx, ids[name]):
            continue
        subject = f"merchant:{ids[name]}:rule"
        open_ = approvals.list_pending(ctx, action=commissions.SET_RULE, subject=subject)
        a = open_[0] if open_ else commissions.propose_rule(
            ctx, maker, merchant_id=ids[name], effective_from=first.replace(day=1).isoformat(),
            kind=kind, params=params, reason="demo: the merchant's contract")
        approvals.approve(ctx, checker, a.id)
    for day in demo_days:
        res = clearing.clear_date(ctx, day, actor="demo")
        out.days.append({"date": res.business_date, "merchants": res.merchants,
                         "gross_fen": res.gross_fen, "commission_fen": res.commission_fen,
                         "net_fen": res.net_fen})
    _payouts(ctx, demo_days[-1], ids.get(RETURNED), checker.name, out)
    return out


def _payouts(ctx: Context, last: date, returned_id: int | None, who: str,
             out: SettlementDemo) -> None:
    batch = payouts.run_batch(ctx, last, actor="demo")
    out.batch_date, out.payouts, out.total_fen = last.isoformat(), batch["payout_count"], \
        batch["total_fen"]
    out.payout_file = batch["file"]
    on = last.isoformat()
    scripted = {}
    if returned_id is not None:
        scripted[reference_for(on, "merchant", returned_id)] = "account closed"
    result = Path(batch["file"]).with_name(f"payout-{on}-result.csv")
    payout_sim.answer(Path(batch["file"]), result, returns=scripted)
    try:
        payouts.import_result(ctx, result)
    except PayoutResultConflictError:  # the reserve cannot cover it: leave the batch sent
        return
    for p in payouts.list_payouts(ctx, business_date=on):
        if p["state"] == "returned":
            out.returned = f"{p['reference']} ({p['returned_reason']})"
    for h in payouts.list_holds(ctx, state=None):
        out.hold_cleared = True
        if h["state"] == "open":
            payouts.clear_hold(ctx, ensure_operator(ctx.engine, ctx.clock, who, "operator"),
                               h["id"], "demo: the merchant's new bank account was verified")


def print_settlement_summary(console: Console, d: SettlementDemo) -> None:
    """The summary's part on commission rules, cleared business days, payouts and a returned one."""
    console.print("[bold]Clearing and settlement[/] (docs/settlement.md)")
    console.print("  rules: " + ", ".join(f"{n}: {k}" for n, k in d.rules.items()))
    for day in d.days:
        console.print(f"  cleared {day['date']}: {day['merchants']} merchants, gross "
                      f"{format_amount(int(day['gross_fen']))}, commission "
                      f"{format_amount(int(day['commission_fen']))}, net "
                      f"{format_amount(int(day['net_fen']))} CNY")
    console.print(f"  payout batch {d.batch_date}: {d.payouts} payouts, "
                  f"{format_amount(d.total_fen)} CNY; file {d.payout_file}")
    if d.returned:
        console.print(f"  returned by the bank: {d.returned}; hold "
                      f"{'cleared after a fix' if d.hold_cleared else 'open'}")
