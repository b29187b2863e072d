"""Partner statements per month: merchants and terminals, fees made payable, and which of
them a settlement payout has taken (``settlement_items.payout_id``). Read-only, set-based
(one GROUP BY per figure), and written to a CSV report under ``settings.reports_dir``."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, case, func, or_, select

from paycell.context import Context
from paycell.merchants.tables import merchants
from paycell.onsite.terminal_tables import terminals
from paycell.partners import rules
from paycell.partners.fees import counted_terminals
from paycell.partners.service import Partner, get_partner
from paycell.partners.tables import fees, merchant_links, partners, terminal_links
from paycell.settlement import calendar as bizcal
from paycell.settlement.tables import items


@dataclass(frozen=True)
class FeeLine:
    kind: str
    business_date: str
    amount_fen: int
    transfer_id: str
    paid_out: bool
    merchant_code: str | None = None
    month: str | None = None
    terminals: int | None = None


@dataclass(frozen=True)
class Totals:
    partner_id: int
    code: str
    name: str
    merchants: int = 0
    terminals: int = 0
    expansion_fen: int = 0
    maintenance_fen: int = 0
    paid_out_fen: int = 0

    @property
    def accrued_fen(self) -> int:
        return self.expansion_fen + self.maintenance_fen

    @property
    def unpaid_fen(self) -> int:
        return self.accrued_fen - self.paid_out_fen


@dataclass
class Statement:
    """One partner's month."""

    partner: Partner
    month: str
    totals: Totals
    merchants: list[dict[str, Any]] = field(default_factory=list)
    terminals: list[dict[str, Any]] = field(default_factory=list)
    fees: list[FeeLine] = field(default_factory=list)


def _bounds(month: str) -> tuple[str, int, int, str, str]:
    year, mon = rules.month(month)
    start, end = bizcal.month_window(year, mon)
    return (rules.month_text(year, mon), start, end, f"{year:04d}-{mon:02d}-01",
            rules.last_day(year, mon).isoformat())


def _during(table: Any, start: int, end: int) -> Any:
    return (table.c.attached_at < end) & or_(table.c.detached_at.is_(None),
                                              table.c.detached_at > start)


def _totals(conn: Connection, month: str, partner_id: int | None) -> list[Totals]:
    _, start, end, first, last = _bounds(month)
    ml = merchant_links
    n_merchants: dict[int, int] = dict(conn.execute(
        select(ml.c.partner_id, func.count(func.distinct(ml.c.merchant_id)))
        .where(_during(ml, start, end)).group_by(ml.c.partner_id)).all())
    counted = counted_terminals(start, end).subquery()
    n_terminals: dict[int, int] = dict(conn.execute(
        select(counted.c.partner_id, func.count()).group_by(counted.c.partner_id)).all())
    f, i = fees, items
    money = {r.partner_id: r for r in conn.execute(
        select(f.c.partner_id,
               func.sum(case((f.c.kind == "expansion_fee", f.c.amount_fen), else_=0))
               .label("expansion"),
               func.sum(case((f.c.kind == "maintenance", f.c.amount_fen), else_=0))
               .label("maintenance"),
               func.sum(case((i.c.payout_id.is_not(None), f.c.amount_fen), else_=0))
               .label("paid"))
        .select_from(f.outerjoin(i, i.c.source_ref == f.c.transfer_id))
        .where(f.c.business_date >= first, f.c.business_date <= last)
        .group_by(f.c.partner_id))}
    stmt = select(partners).where(partners.c.state != "rejected").order_by(partners.c.id)
    if partner_id is not None:
        stmt = stmt.where(partners.c.id == partner_id)
    out = []
    for p in conn.execute(stmt):
        m = money.get(p.id)
        out.append(Totals(p.id, p.code, p.name, int(n_merchants.get(p.id, 0)),
                          int(n_terminals.get(p.id, 0)),
                          int(m.expansion or 0) if m else 0,
                          int(m.maintenance or 0) if m else 0, int(m.paid or 0) if m else 0))
    return out


def month_summary(ctx: Context, month: str) -> list[Totals]:
    """Every partner's figures for ``month`` (``month_invalid`` otherwise)."""
    with ctx.engine.connect() as conn:
        return _totals(conn, month, None)


def partner_statement(ctx: Context, partner_id: int, month: str) -> Statement:
    """One partner's statement for ``month``: merchants attached at some moment in it,
    the terminals that count for its maintenance fee, the fees dated in it (expansion fees
    paid that month, the month's maintenance) and whether a payout has taken each.
    Raises ``partner_not_found``, ``month_invalid``."""
    p = get_partner(ctx, partner_id)
    label, start, end, first, last = _bounds(month)
    ml, tl = merchant_links, terminal_links
    with ctx.engine.connect() as conn:
        totals = _totals(conn, label, partner_id)[0] if p.state != "rejected" else Totals(
            p.id, p.code, p.name)
        paid = select(fees.c.merchant_id).where(fees.c.kind == "expansion_fee")
        ms = [{"code": r.code, "name": r.name, "attached_at": r.attached_at,
               "detached_at": r.detached_at, "expansion_fee_paid": bool(r.paid)}
              for r in conn.execute(
                  select(merchants.c.code, merchants.c.name, ml.c.attached_at,
                         ml.c.detached_at, ml.c.merchant_id.in_(paid).label("paid"))
                  .select_from(ml.join(merchants, merchants.c.id == ml.c.merchant_id))
                  .where(ml.c.partner_id == partner_id, _during(ml, start, end))
                  .order_by(ml.c.id))]
        counted = {r.terminal_pk for r in conn.execute(counted_terminals(start, end))
                   if r.partner_id == partner_id}
        ts = [{"terminal_id": r.terminal_id, "merchant_code": r.code, "state": r.state,
               "attached_at": r.attached_at, "detached_at": r.detached_at,
               "counted": r.id in counted}
              for r in conn.execute(
                  select(terminals.c.id, terminals.c.terminal_id, terminals.c.state,
                         merchants.c.code, tl.c.attached_at, tl.c.detached_at)
                  .select_from(tl.join(terminals, terminals.c.id == tl.c.terminal_pk)
                               .join(merchants, merchants.c.id == terminals.c.merchant_id))
                  .where(tl.c.partner_id == partner_id, _during(tl, start, end))
                  .order_by(tl.c.id))]
        lines = [FeeLine(r.kind, r.business_date, int(r.amount_fen), r.transfer_id,
                         r.payout_id is not None, r.code, r.month, r.terminals)
                 for r in conn.execute(
                     select(fees, items.c.payout_id, merchants.c.code)
                     .select_from(fees.outerjoin(items, items.c.source_ref == fees.c.transfer_id)
                                  .outerjoin(merchants, merchants.c.id == fees.c.merchant_id))
                     .where(fees.c.partner_id == partner_id, fees.c.business_date >= first,
                            fees.c.business_date <= last)
                     .order_by(fees.c.business_date, fees.c.id))]
    return Statement(p, label, totals, ms, ts, lines)


def reports_dir(ctx: Context) -> Path:
    path = Path(ctx.settings.reports_dir) / "partners"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_summary(ctx: Context, month: str, rows: list[Totals]) -> Path:
    """``partners-<month>.csv``: one line per partner, a total line last."""
    path = reports_dir(ctx) / f"partners-{month}.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["partner", "name", "merchants", "terminals", "expansion_fen",
                    "maintenance_fen", "accrued_fen", "paid_out_fen", "unpaid_fen"])
        for t in rows:
            w.writerow([t.code, t.name, t.merchants, t.terminals, t.expansion_fen,
                        t.maintenance_fen, t.accrued_fen, t.paid_out_fen, t.unpaid_fen])
        w.writerow(["TOTAL", "", sum(t.merchants for t in rows),
                    sum(t.terminals for t in rows), sum(t.expansion_fen for t in rows),
                    sum(t.maintenance_fen for t in rows), sum(t.accrued_fen for t in rows),
                    sum(t.paid_out_fen for t in rows), sum(t.unpaid_fen for t in rows)])
    return path


def write_statement(ctx: Context, s: Statement) -> Path:
    """``partner-<code>-<month>.csv``: a section per part, one line per row."""
    path = reports_dir(ctx) / f"partner-{s.partner.code}-{s.month}.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["section", "partner", "month", "item", "detail", "amount_fen", "paid_out"])
        base = [s.partner.code, s.month]
        for m in s.merchants:
            w.writerow(["merchant", *base, m["code"], m["name"], "",
                        "expansion fee paid" if m["expansion_fee_paid"] else ""])
        for t in s.terminals:
            w.writerow(["terminal", *base, t["terminal_id"], t["merchant_code"], "",
                        "counted" if t["counted"] else "not counted"])
        for f in s.fees:
            detail = (f"merchant {f.merchant_code}" if f.kind == "expansion_fee"
                      else f"{f.terminals} terminals, {f.month}")
            w.writerow([f.kind, *base, f.business_date, detail, f.amount_fen,
                        "yes" if f.paid_out else "no"])
        tot = s.totals
        w.writerow(["total", *base, "accrued", "", tot.accrued_fen, tot.paid_out_fen])
    return path


__all__ = ["FeeLine", "Statement", "Totals", "month_summary", "partner_statement",
           "write_statement", "write_summary"]
