"""Channel partners' fees in the ledger: the merchant-expansion fee exactly once when its
condition first holds (not the day before; once under a concurrent double run), POS
maintenance per counted terminal per month (re-running a month changes nothing), each with
its settlement item. Both databases; the ledger is audited after each test."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from partner_helpers import (  # type: ignore[import-not-found]
    DAY_S,
    balance,
    makers,
    merchant,
    partner,
    sales,
    terminal,
)
from sqlalchemy import select

from paycell.ledger.chart import Code, TransferCode, system_account
from paycell.onsite import terminals as tm
from paycell.operators import approvals
from paycell.partners import fees, rules
from paycell.partners import service as ps
from paycell.partners.errors import MonthInvalidError, MonthNotOverError
from paycell.partners.tables import fees as fees_table
from paycell.settlement.items import unpaid
from paycell.settlement.tables import items


def test_expansion_fee_not_the_day_before_then_exactly_once(client, ctx, clock) -> None:
    p = partner(ctx, fee=80_000)
    maker, _ = makers(ctx)
    m = merchant(ctx)
    ps.attach_merchant(ctx, maker, p.id, m.merchant.code)
    clock.advance(DAY_S)
    sales(ctx, m, 29)
    sales(ctx, m, 1, code=TransferCode.POS_PURCHASE)
    # Sales not counted: pending holds, refunds, money into other accounts.
    sales(ctx, m, 5, code=TransferCode.TOPUP_BANK)
    clock.advance(88 * DAY_S)  # active 89 days
    assert fees.check_expansion(ctx).created == []
    clock.advance(DAY_S - 1)
    assert fees.check_expansion(ctx).created == []
    clock.advance(1)  # exactly 90 days since activation
    run = fees.check_expansion(ctx)
    assert [(f.partner_id, f.merchant_id, f.amount_fen) for f in run.created] == [
        (p.id, m.merchant.id, 80_000)]
    assert balance(ctx, p.payable_account_id) == 80_000
    tr = ctx.ledger.transfer(f"partner-expansion:{m.merchant.id}")
    assert tr is not None and tr.code == TransferCode.PARTNER_EXPANSION_FEE
    assert tr.debit_account_id == system_account(ctx.ledger, Code.EXPENSE_CHANNEL).id
    with ctx.engine.connect() as conn:
        item = unpaid(conn, "partner", p.id)
    assert [(i.kind, i.amount_fen, i.account_id, i.source_ref) for i in item] == [
        ("expansion_fee", 80_000, p.payable_account_id, tr.id)]
    # Later checks, more sales, a fee change: nothing more for this merchant, ever.
    clock.advance(DAY_S)
    sales(ctx, m, 40)
    assert fees.check_expansion(ctx).created == []
    assert balance(ctx, p.payable_account_id) == 80_000


def test_expansion_needs_enough_sales_and_an_active_merchant(client, ctx, clock) -> None:
    p = partner(ctx)
    maker, _ = makers(ctx)
    few, gone, unattached = merchant(ctx), merchant(ctx), merchant(ctx)
    for m in (few, gone):
        ps.attach_merchant(ctx, maker, p.id, m.merchant.code)
    sales(ctx, few, 29)
    sales(ctx, gone, 30)
    sales(ctx, unattached, 30)
    from paycell.merchants import onboarding
    onboarding.suspend(ctx, maker, gone.merchant.id, "paperwork")
    clock.advance(100 * DAY_S)
    assert fees.check_expansion(ctx).created == []
    sales(ctx, few, 1)
    assert [f.merchant_id for f in fees.check_expansion(ctx).created] == [few.merchant.id]


@pytest.mark.parametrize("threads", [2])
def test_expansion_concurrent_double_run_pays_once(client, ctx, clock, threads) -> None:
    p = partner(ctx, fee=20_000)
    maker, _ = makers(ctx)
    ms = [merchant(ctx) for _ in range(3)]
    for m in ms:
        ps.attach_merchant(ctx, maker, p.id, m.merchant.code)
        sales(ctx, m, 30)
    clock.advance(90 * DAY_S)
    results: list[fees.FeeRun] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def run() -> None:
        try:
            barrier.wait()
            results.append(fees.check_expansion(ctx))
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert sum(len(r.created) for r in results) == 3
    assert balance(ctx, p.payable_account_id) == 60_000
    with ctx.engine.connect() as conn:
        assert len(conn.execute(select(fees_table)).all()) == 3
        assert len(conn.execute(select(items)).all()) == 3


@hsettings(max_examples=8, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(days=st.integers(85, 95), count=st.integers(26, 34))
def test_expansion_sql_agrees_with_the_rule(client, ctx, clock, days, count) -> None:
    p = partner(ctx)
    maker, _ = makers(ctx)
    m = merchant(ctx)
    ps.attach_merchant(ctx, maker, p.id, m.merchant.code)
    sales(ctx, m, count)
    start = clock.now_us()
    clock.advance(days * DAY_S)
    paid = [f.merchant_id for f in fees.check_expansion(ctx).created]
    due = rules.expansion_due(m.merchant.activated_at, clock.now_us(), 90, count, 30)
    assert (m.merchant.id in paid) == due
    assert start <= clock.now_us()


def _month_end(clock, year: int, month: int) -> None:
    nxt = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    clock.set(nxt)  # 08:00 CST on the 1st: the CST month is over


def test_maintenance_counts_terminals_and_rerun_changes_nothing(client, ctx, clock) -> None:
    clock.set(datetime(2026, 2, 27, tzinfo=UTC))
    a, b = partner(ctx, "North"), partner(ctx, "South")
    maker, _ = makers(ctx)
    m1, m2 = merchant(ctx), merchant(ctx)
    t1, t2, t3 = terminal(ctx, m1), terminal(ctx, m1), terminal(ctx, m2)
    for t in (t1, t2):
        ps.attach_terminal(ctx, maker, a.id, t.terminal_id)
    ps.attach_terminal(ctx, maker, b.id, t3.terminal_id)
    clock.set(datetime(2026, 3, 10, tzinfo=UTC))
    # t2 moves from a to b in March: counted once, for b; t3 retired in March: counted.
    ps.detach_terminal(ctx, maker, a.id, t2.terminal_id)
    ps.attach_terminal(ctx, maker, b.id, t2.terminal_id)
    tm.change_state(ctx, t3.terminal_id, "retire", "test")
    with pytest.raises(MonthNotOverError):
        fees.accrue_maintenance(ctx, "2026-03")
    _month_end(clock, 2026, 3)
    per = ctx.settings.pos_maintenance_fen
    run = fees.accrue_maintenance(ctx, "2026-03")
    got = {(f.partner_id, f.terminals, f.amount_fen, f.business_date) for f in run.created}
    assert got == {(a.id, 1, per, "2026-03-31"), (b.id, 2, 2 * per, "2026-03-31")}
    assert balance(ctx, a.payable_account_id) == per
    assert balance(ctx, b.payable_account_id) == 2 * per
    tr = ctx.ledger.transfer(f"partner-maintenance:{b.id}:2026-03")
    assert tr is not None and tr.code == TransferCode.PARTNER_MAINTENANCE
    again = fees.accrue_maintenance(ctx, "2026-03")
    assert again.created == [] and again.candidates == 0
    assert balance(ctx, b.payable_account_id) == 2 * per
    # April: the retired t3 does not count any more; t1 and t2 do.
    _month_end(clock, 2026, 4)
    april = {(f.partner_id, f.terminals) for f in fees.accrue_maintenance(ctx, "2026-04").created}
    assert april == {(a.id, 1), (b.id, 1)}
    with ctx.engine.connect() as conn:
        kinds = sorted(i.kind for i in unpaid(conn, "partner", b.id))
    assert kinds == ["maintenance", "maintenance"]


def test_maintenance_refuses_bad_months(client, ctx) -> None:
    for bad in ("2026-13", "2026-3", "March", ""):
        with pytest.raises(MonthInvalidError):
            fees.accrue_maintenance(ctx, bad)
    with pytest.raises(MonthNotOverError):
        fees.accrue_maintenance(ctx, "2999-01")


@given(n=st.integers(0, 10_000), per=st.integers(0, 1_000_000))
def test_maintenance_fee_is_per_terminal(n, per) -> None:
    assert rules.maintenance_fen(n, per) == n * per
    assert rules.maintenance_fen(n + 1, per) - rules.maintenance_fen(n, per) == per


@given(fee=st.integers(-10**6, 10**6))
def test_expansion_fee_bounds(fee) -> None:
    if 20_000 <= fee <= 200_000:
        assert rules.expansion_fee(fee) == fee
    else:
        with pytest.raises(Exception) as exc:
            rules.expansion_fee(fee)
        assert getattr(exc.value, "code", None) == "partner_invalid"


def test_a_partner_specific_rule_replaces_the_settings(client, ctx, clock) -> None:
    maker, checker = makers(ctx)
    app = ps.PartnerApplication(name="Pilot", contact_phone="+8613900139009",
                                bank_name="ICBC", bank_account_holder="Pilot Ltd.",
                                bank_account_number="6222000012121212",
                                expansion_fee_fen=30_000, expansion_days=2,
                                expansion_min_txns=3)
    p, a = ps.register_partner(ctx, maker, app)
    approvals.approve(ctx, checker, a.id)
    p = ps.get_partner(ctx, p.id)
    m, slow = merchant(ctx), merchant(ctx)
    for x in (m, slow):
        ps.attach_merchant(ctx, maker, p.id, x.merchant.code)
    sales(ctx, m, 3)
    sales(ctx, slow, 2)
    clock.advance(2 * DAY_S - 1)
    assert fees.check_expansion(ctx).created == []
    clock.advance(1)
    assert [f.merchant_id for f in fees.check_expansion(ctx).created] == [m.merchant.id]
    assert balance(ctx, p.payable_account_id) == 30_000
    with pytest.raises(Exception) as exc:
        ps.register_partner(ctx, maker, ps.PartnerApplication(
            **{**app.__dict__, "expansion_days": -1}))
    assert getattr(exc.value, "code", None) == "partner_invalid"


def test_worker_job_checks_expansion_and_accrues_the_month_that_ended(client, ctx,
                                                                       clock) -> None:
    from paycell.partners.jobs import run_partners_jobs

    clock.set(datetime(2026, 4, 2, tzinfo=UTC))
    p = partner(ctx)
    maker, _ = makers(ctx)
    m = merchant(ctx)
    ps.attach_merchant(ctx, maker, p.id, m.merchant.code)
    ps.attach_terminal(ctx, maker, p.id, terminal(ctx, m).terminal_id)
    sales(ctx, m, 30)
    assert run_partners_jobs(ctx) == 0  # March had no terminal; the merchant is new
    clock.set(datetime(2026, 5, 1, 1, tzinfo=UTC))  # 09:00 CST on 1 May: April is over
    assert run_partners_jobs(ctx) == 1
    assert run_partners_jobs(ctx) == 0
    clock.set(datetime(2026, 7, 1, 1, tzinfo=UTC))  # 90 days on; June over (May not run)
    assert run_partners_jobs(ctx) == 2
    assert balance(ctx, p.payable_account_id) == 2 * ctx.settings.pos_maintenance_fen + 50_000
