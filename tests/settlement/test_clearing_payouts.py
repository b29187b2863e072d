"""Clearing a business date on both databases, and its payouts with a returned one."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from settle_helpers import at, balance, deduct, fund_reserve, refund, sale, set_rule
from sqlalchemy import func, select

from paycell.clock import ManualClock
from paycell.context import Context
from paycell.gateways import payout_sim
from paycell.ledger.chart import Code, system_account
from paycell.ledger.tables import transfers
from paycell.merchants.service import create_active_merchant
from paycell.operators.model import Operator
from paycell.settlement import clearing, payouts
from paycell.settlement.errors import (
    BusinessDateClearedError,
    BusinessDateNotClearedError,
    BusinessDateOpenError,
    PayoutFileInvalidError,
)
from paycell.settlement.items import unpaid

DAY = "2026-11-25"


def _count(ctx: Context) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(transfers)).scalar_one())


def test_a_day_cleared_once(ctx: Context, clock: ManualClock, maker: Operator,
                            checker: Operator) -> None:
    diner = create_active_merchant(ctx, name="Jade Diner", category="food_beverage").merchant
    cinema = create_active_merchant(ctx, name="Star Cinema", category="tickets_travel").merchant
    at(clock, "2026-11-24", "09:00")
    set_rule(ctx, maker, checker, diner.id, "percentage", {"bp": 100})
    set_rule(ctx, maker, checker, cinema.id, "discount", {"paid_bp": 8_000, "settle_bp": 6_000})
    deduct(ctx, maker, checker, diner.id, DAY, 500)
    sale(ctx, diner, 99_999)  # the day before: not in DAY's window
    at(clock, DAY, "00:00")
    sale(ctx, diner, 10_000)
    at(clock, DAY, "12:00")
    sale(ctx, diner, 25_050)
    refund(ctx, diner, 5_000)
    sale(ctx, cinema, 8_000)
    sale(ctx, cinema, 8_000)
    at(clock, DAY, "23:59")
    sale(ctx, cinema, 8_000)
    refund(ctx, cinema, 8_000)
    at(clock, "2026-11-26", "00:00")
    sale(ctx, diner, 70_000)  # the next day
    with pytest.raises(BusinessDateOpenError):
        clearing.clear_date(ctx, date(2026, 11, 25))  # grace not over
    before = balance(ctx, diner.payable_account_id)
    clock.advance(seconds=ctx.settings.clearing_grace_s)
    res = clearing.clear_date(ctx, date(2026, 11, 25))
    assert (res.merchants, res.blocked) == (2, [])
    rows = {r["merchant_id"]: r for r in clearing.clearings_of(ctx, business_date=DAY)}
    d = rows[diner.id]
    assert (d["sales_count"], d["gross_fen"], d["refund_count"], d["refunds_fen"]) == (
        2, 35_050, 1, 5_000)
    assert (d["commission_fen"], d["commission_returned_fen"], d["deductions_fen"]) == (
        351, 50, 500)  # 1 % of 350.50 CNY = 3.505 -> 3.51
    assert d["net_fen"] == 35_050 - 5_000 - 351 + 50 - 500
    c = rows[cinema.id]
    assert (c["gross_fen"], c["commission_fen"], c["commission_returned_fen"]) == (
        24_000, 6_000, 2_000)
    assert c["net_fen"] == 24_000 - 8_000 - 6_000 + 2_000
    assert balance(ctx, diner.payable_account_id) == before - 351 + 50 - 500
    revenue = system_account(ctx.ledger, Code.REVENUE_COMMISSION)
    assert revenue.balance == 351 - 50 + 6_000 - 2_000
    with ctx.engine.connect() as conn:
        items = unpaid(conn, "merchant", diner.id)
    assert [(i.kind, i.amount_fen, i.business_date) for i in items] == [
        ("clearing", d["net_fen"], DAY)]
    report = clearing.clearings_of(ctx, merchant_id=diner.id)
    assert len(report) == 1
    # a second run changes nothing
    n = _count(ctx)
    again = clearing.clear_date(ctx, date(2026, 11, 25))
    assert (again.cleared_now, again.net_fen) == (0, res.net_fen)
    assert _count(ctx) == n
    assert balance(ctx, diner.payable_account_id) == before - 351 + 50 - 500
    # a deduction for a cleared date comes too late
    with pytest.raises(BusinessDateClearedError):
        deduct(ctx, maker, checker, diner.id, DAY, 100)


def test_payout_batch_with_a_returned_payout(ctx: Context, clock: ManualClock,
                                             maker: Operator, checker: Operator,
                                             tmp_path: Path) -> None:
    good = create_active_merchant(ctx, name="Good Tea", category="food_beverage").merchant
    closed = create_active_merchant(ctx, name="Closed Noodles", category="food_beverage",
                                    bank_account_number="6222000011110000").merchant
    at(clock, DAY)
    sale(ctx, good, 30_000)
    sale(ctx, closed, 12_000)
    fund_reserve(ctx, 1_000_000)
    with pytest.raises(BusinessDateNotClearedError):
        payouts.run_batch(ctx, date(2026, 11, 25), actor="t")
    at(clock, "2026-11-26", "01:00")
    clearing.clear_date(ctx, date(2026, 11, 25))
    batch = payouts.run_batch(ctx, date(2026, 11, 25), actor="t")
    assert (batch["payout_count"], batch["total_fen"]) == (2, 42_000)
    assert payouts.run_batch(ctx, date(2026, 11, 25), actor="t")["id"] == batch["id"]
    lines = Path(batch["file"]).read_text().splitlines()
    assert lines[0].startswith(f"H,PAYCELL-PAYOUT,1,{batch['id']},{DAY},icbc,2,42000")
    assert lines[-1] == "T,2,42000"
    assert "6222000011110000" in lines[2] or "6222000011110000" in lines[1]
    assert balance(ctx, good.payable_account_id) == 0
    result = tmp_path / "result.csv"
    assert payout_sim.answer(Path(batch["file"]), result) == {"paid": 1, "returned": 1}
    n = _count(ctx)
    assert payouts.import_result(ctx, result) == {"paid": 1, "returned": 1, "already": 0}
    assert _count(ctx) == n + 2
    assert payouts.import_result(ctx, result) == {"paid": 0, "returned": 0, "already": 2}
    assert _count(ctx) == n + 2
    by_party = {p["party_id"]: p for p in payouts.list_payouts(ctx)}
    assert by_party[good.id]["state"] == "paid"
    assert by_party[closed.id]["state"] == "returned"
    assert by_party[closed.id]["returned_reason"] == "account closed"
    assert by_party[good.id]["reference"].startswith("STL20261125M")
    assert balance(ctx, closed.payable_account_id) == 12_000  # the money came back
    assert system_account(ctx.ledger, Code.BANK_CLEARING, "icbc").balance == 0
    hold = payouts.list_holds(ctx)
    assert [(h["party_id"], h["state"]) for h in hold] == [(closed.id, "open")]
    # the next day: the held merchant is not paid until an operator clears the hold
    at(clock, "2026-11-27", "01:00")
    clearing.clear_date(ctx, date(2026, 11, 26))
    assert payouts.run_batch(ctx, date(2026, 11, 26), actor="t")["payout_count"] == 0
    payouts.clear_hold(ctx, maker, hold[0]["id"], "new account number on file")
    assert payouts.list_holds(ctx) == []
    at(clock, "2026-11-28", "01:00")
    clearing.clear_date(ctx, date(2026, 11, 27))
    nxt = payouts.run_batch(ctx, date(2026, 11, 27), actor="t")
    assert (nxt["payout_count"], nxt["total_fen"]) == (1, 12_000)


def test_a_bad_result_file_changes_nothing(ctx: Context, clock: ManualClock,
                                           tmp_path: Path) -> None:
    m = create_active_merchant(ctx, name="Plum Shop", category="retail").merchant
    at(clock, DAY)
    sale(ctx, m, 5_000)
    at(clock, "2026-11-26", "01:00")
    clearing.clear_date(ctx, date(2026, 11, 25))
    batch = payouts.run_batch(ctx, date(2026, 11, 25), actor="t")
    result = tmp_path / "result.csv"
    payout_sim.answer(Path(batch["file"]), result)
    text = result.read_text().splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([*text[:-1], "T,1,4999"]) + "\n")
    n = _count(ctx)
    with pytest.raises(PayoutFileInvalidError):
        payouts.import_result(ctx, bad)
    assert _count(ctx) == n
    assert payouts.list_payouts(ctx)[0]["state"] == "sent"


def test_clearing_and_the_payout_batch_run_twice_at_once_move_money_once(
        ctx: Context, clock: ManualClock, maker: Operator, checker: Operator) -> None:
    """Two workers (or an operator and the job) clearing and paying the same date at the
    same moment: one set of transfers, one item per merchant, one payout each."""
    from concurrent.futures import ThreadPoolExecutor

    shops = [create_active_merchant(ctx, name=f"Twin {i}", category="retail").merchant
             for i in range(3)]
    fund_reserve(ctx, 10_000_000)
    at(clock, "2026-11-24", "09:00")
    for m in shops:
        set_rule(ctx, maker, checker, m.id, "percentage", {"bp": 100})
    at(clock, DAY, "10:00")
    for i, m in enumerate(shops):
        sale(ctx, m, 10_000 * (i + 1))
    at(clock, "2026-11-26", "01:00")
    start = _count(ctx)
    with ThreadPoolExecutor(2) as pool:
        cleared = list(pool.map(lambda _: clearing.clear_date(ctx, date(2026, 11, 25)),
                                range(2)))
    assert sorted(r.cleared_now for r in cleared) == [0, 3]
    after_clearing = _count(ctx)
    assert after_clearing - start == 3  # one commission transfer per merchant, not two
    with ctx.engine.connect() as conn:
        per_shop = [unpaid(conn, "merchant", m.id) for m in shops]
    assert [len(i) for i in per_shop] == [1, 1, 1]
    with ThreadPoolExecutor(2) as pool:
        batches = list(pool.map(lambda _: payouts.run_batch(ctx, date(2026, 11, 25),
                                                            actor="twin"), range(2)))
    assert batches[0]["id"] == batches[1]["id"]
    assert _count(ctx) - after_clearing == 3  # one PAYOUT transfer per merchant
    listed = payouts.list_payouts(ctx, business_date=DAY)
    assert sorted(p["party_id"] for p in listed) == sorted(m.id for m in shops)
