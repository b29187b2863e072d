"""Statement files the partners would send (docs/reconciliation.md, the format in
``paycell/reconciliation/formats.py``).

- :func:`from_bank_sim` / :func:`from_carrier_sim`: from the simulators' own records of
  what they did (their operations in memory), as a real bank's or carrier's statement is;
- :func:`from_records`: for the demo, from our own records (top-ups, withdrawals, payouts,
  transit fares) plus injected discrepancies, one of each class, so that the demo shows
  them all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from sqlalchemy import text

from paycell.context import Context
from paycell.gateways.bank_sim import BankSimulator
from paycell.gateways.carrier_sim import CarrierSimulator
from paycell.reconciliation.formats import OutLine
from paycell.settlement.calendar import window


def from_bank_sim(sim: BankSimulator, bank: str, day: date, cutoff: str = "00:00"
                  ) -> Iterator[OutLine]:
    """The bank's statement of ``day``: its approved debits (money to us) and credits."""
    lo, hi = window(day, cutoff)
    for op in sorted(sim.core.ops.values(), key=lambda o: o.created_at):
        card = sim.cards.get(op.subject)
        if (op.status != "approved" or card is None or card.bank != bank
                or not lo <= op.created_at < hi):
            continue
        yield OutLine(op.partner_ref or op.reference, day.isoformat(),
                      "in" if op.kind == "debit" else "out", op.reference, op.amount_fen,
                      f"卡 *{card.pan[-4:]}")


def from_carrier_sim(sim: CarrierSimulator, day: date, cutoff: str = "00:00"
                     ) -> Iterator[OutLine]:
    """The carrier's statement of ``day``: the phone-bill charges it approved."""
    lo, hi = window(day, cutoff)
    for op in sorted(sim.core.ops.values(), key=lambda o: o.created_at):
        if op.status == "approved" and lo <= op.created_at < hi:
            yield OutLine(op.partner_ref or op.reference, day.isoformat(), "in",
                          op.reference, op.amount_fen, f"话费充值 {op.subject}")


@dataclass(frozen=True)
class Injected:
    """Discrepancies to put into a statement built from our records."""

    drop: int = 1  # the first N records left out: missing_theirs
    change: int = 1  # the next N with one yuan more: amount_mismatch
    duplicate: int = 1  # the next N listed twice: duplicate
    unknown_fen: int = 8_800  # one line we have no record of: missing_ours (0: none)


_RECORDS = {
    "bank": ("SELECT 'topup:' || id AS r, 'in' AS d, amount_fen AS a, created_at AS ts "
             "FROM topups WHERE source = 'card' AND partner = :p AND state = 'confirmed' "
             "AND created_at >= :lo AND created_at < :hi UNION ALL "
             "SELECT 'withdrawal:' || id, 'out', amount_fen, created_at FROM withdrawals "
             "WHERE bank = :p AND state = 'confirmed' AND created_at >= :lo "
             "AND created_at < :hi ORDER BY ts, r"),
    "carrier": ("SELECT 'topup:' || id AS r, 'in' AS d, amount_fen AS a, created_at AS ts "
                "FROM topups WHERE source = 'phone_bill' AND partner = :p AND state = "
                "'confirmed' AND created_at >= :lo AND created_at < :hi ORDER BY ts, r"),
    "transit": ("SELECT e.pan || ':' || e.psn || ':' || CAST(e.atc AS VARCHAR(10)) AS r, "
                "'in' AS d, e.cleared_fen AS a, e.created_at AS ts FROM ecash_records e "
                "JOIN merchants m ON m.id = e.merchant_id WHERE m.code = :p "
                "AND e.created_at >= :lo AND e.created_at < :hi ORDER BY ts, r"),
}


def from_records(ctx: Context, source: str, partner: str, day: date,
                 inject: Injected = Injected()) -> list[OutLine]:
    """A statement built from our records of ``day`` with ``inject``'s discrepancies.
    (The demo's days are small: a list is fine here.)"""
    lo, hi = window(day, ctx.settings.clearing_cutoff)
    with ctx.engine.connect() as conn:
        rows = conn.execute(text(_RECORDS[source]), {"p": partner, "lo": lo, "hi": hi}).all()
    prefix = {"bank": "BK", "carrier": "CB", "transit": "TR"}[source]
    out: list[OutLine] = []
    for i, (ref, direction, amount, _ts) in enumerate(rows):
        if i < inject.drop:
            continue
        if i < inject.drop + inject.change:
            amount += 100
        line = OutLine(f"{prefix}{i + 1:08d}", day.isoformat(), direction, ref, amount,
                       "对账单" if source == "bank" else "")
        out.append(line)
        if inject.drop + inject.change <= i < inject.drop + inject.change + inject.duplicate:
            out.append(OutLine(f"{prefix}{i + 1:08d}D", line.day, direction, ref, amount,
                               "重复"))
    if inject.unknown_fen:
        out.append(OutLine(f"{prefix}99999999", day.isoformat(), "in",
                           f"unknown:{day.isoformat()}" if source != "bank"
                           else f"topup:tu_unknown_{day.strftime('%Y%m%d')}",
                           inject.unknown_fen, "未知来账"))
    return out
