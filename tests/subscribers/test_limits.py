"""Tier limits as funding and payments meet them: inside ``ledger.post``'s before-hook."""

from __future__ import annotations

import itertools
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from wallets import fund, pay

from paycell.clock import ManualClock
from paycell.config import Settings
from paycell.context import Context, build_context
from paycell.ledger import TransferRequest
from paycell.ledger.chart import Code, TransferCode, system_account
from paycell.ledger.errors import AccountOverdraftError
from paycell.subscribers.errors import (
    BalanceCapExceededError,
    LimitExceededError,
    SubscriberClosedError,
)
from paycell.subscribers.lifecycle import close_account
from paycell.subscribers.limits import all_or_nothing, guard_inflow, release_outflow, used_fen
from paycell.subscribers.service import Subscriber, open_account
from paycell.subscribers.tables import usage
from paycell.subscribers.tiers import DEFAULT_TIERS, parse_tiers

PIN = "730419"
_numbers = itertools.count(1)


def _new(ctx: Context) -> Subscriber:
    return open_account(ctx, f"+86138{next(_numbers):08d}", PIN)


def topup(ctx: Context, sub: Subscriber, amount: int) -> None:
    """An inflow guarded by the balance cap, as funding does it."""
    source = system_account(ctx.ledger, Code.BANK_CLEARING, "testbank")
    req = TransferRequest(f"test:in:{next(_numbers)}", source.id, sub.wallet_account_id,
                          amount, code=TransferCode.TOPUP_BANK)
    ctx.ledger.post([req], before=lambda c: guard_inflow(c, sub.id, amount,
                                                         settings=ctx.settings),
                    hook=all_or_nothing)


def _usage(ctx: Context, sub: Subscriber) -> tuple[int, int]:
    with ctx.engine.connect() as conn:
        return used_fen(conn, sub.id, ctx.clock.now_us())


def test_the_default_tier_0_limits(ctx: Context, clock: ManualClock) -> None:
    sub = _new(ctx)
    topup(ctx, sub, 100_000)  # the tier 0 balance cap: 1,000 CNY
    with pytest.raises(BalanceCapExceededError) as cap:
        topup(ctx, sub, 1)
    assert cap.value.detail == {"cap_fen": 100_000, "headroom_fen": 0}
    with pytest.raises(LimitExceededError) as exc:
        pay(ctx, sub, 50_001)
    assert exc.value.detail == {"limit": "per_transaction", "limit_fen": 50_000,
                                "remaining_fen": 50_000}
    pay(ctx, sub, 50_000)
    pay(ctx, sub, 40_000)
    topup(ctx, sub, 50_000)
    with pytest.raises(LimitExceededError) as exc:
        pay(ctx, sub, 10_001)
    assert exc.value.detail == {"limit": "daily", "limit_fen": 100_000,
                                "remaining_fen": 10_000}
    assert _usage(ctx, sub) == (90_000, 90_000)  # the refusal counted nothing
    clock.advance(days=1)
    pay(ctx, sub, 50_000)
    topup(ctx, sub, 50_000)
    pay(ctx, sub, 50_000)
    clock.advance(days=1)
    topup(ctx, sub, 40_000)
    with pytest.raises(LimitExceededError) as exc:
        pay(ctx, sub, 10_001)
    assert exc.value.detail["limit"] == "monthly"
    assert exc.value.detail["remaining_fen"] == 10_000
    clock.set(datetime(2026, 1, 31, 16, tzinfo=UTC))  # 1 February 00:00 in Beijing
    pay(ctx, sub, 10_001)
    assert _usage(ctx, sub) == (10_001, 10_001)


def test_refused_money_counts_no_usage_and_released_usage_comes_back(ctx: Context) -> None:
    sub = _new(ctx)
    fund(ctx, sub, 1_000)
    with pytest.raises(AccountOverdraftError):
        pay(ctx, sub, 1_001)
    assert _usage(ctx, sub) == (0, 0)
    at = ctx.clock.now_us()
    pay(ctx, sub, 600, hold=True)
    with ctx.engine.begin() as conn:
        release_outflow(conn, sub.id, 600, at)
        release_outflow(conn, sub.id, 600, at)  # never below zero
    assert _usage(ctx, sub) == (0, 0)


def test_a_closed_wallet_receives_nothing(ctx: Context) -> None:
    sub = _new(ctx)
    close_account(ctx, sub.id)
    with pytest.raises(SubscriberClosedError):
        topup(ctx, sub, 1)


def test_tiers_are_configured() -> None:
    assert parse_tiers("") == DEFAULT_TIERS
    assert DEFAULT_TIERS[0].balance_cap_fen == 100_000  # 1,000 CNY, as the issue says
    for bad in ("[]", "{}", "nonsense", '[{"tier": 1, "name": "x", "balance_cap_fen": 1, '
                '"per_transaction_fen": 1, "daily_fen": 1, "monthly_fen": 1}]'):
        with pytest.raises(ValueError):
            parse_tiers(bad)


SMALL = json.dumps([{"tier": 0, "name": "small", "balance_cap_fen": 40_000,
                     "per_transaction_fen": 5_000, "daily_fen": 12_000,
                     "monthly_fen": 30_000}])
START = datetime(2026, 1, 29, 10, tzinfo=UTC)
steps = st.lists(st.tuples(st.sampled_from(["in", "out", "out"]),
                           st.integers(1, 8_000), st.integers(0, 30)), max_size=25)


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_usage_accounting_matches_a_model(engine: Engine, db_url: str,
                                          steps: list[tuple[str, int, int]]) -> None:
    clock = ManualClock(START)
    ctx = build_context(engine, clock=clock, settings=Settings(
        _env_file=None, database_url=db_url, kyc_tiers_json=SMALL))
    sub = _new(ctx)
    balance, used = 0, {}  # (period) -> fen
    for kind, amount, hours in steps:
        clock.advance(hours=hours)
        local = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
            microseconds=clock.now_us()) + timedelta(hours=8)
        day, month = local.strftime("d%Y-%m-%d"), local.strftime("m%Y-%m")
        if kind == "in":
            if balance + amount > 40_000:
                with pytest.raises(BalanceCapExceededError):
                    topup(ctx, sub, amount)
            else:
                topup(ctx, sub, amount)
                balance += amount
            continue
        over = (amount > 5_000 or used.get(day, 0) + amount > 12_000
                or used.get(month, 0) + amount > 30_000)
        if over:
            with pytest.raises(LimitExceededError):
                pay(ctx, sub, amount)
        elif amount > balance:
            with pytest.raises(AccountOverdraftError):
                pay(ctx, sub, amount)
        else:
            pay(ctx, sub, amount)
            balance -= amount
            used[day] = used.get(day, 0) + amount
            used[month] = used.get(month, 0) + amount
    assert ctx.ledger.account(sub.wallet_account_id).balance == balance
    with engine.connect() as conn:
        stored = dict(conn.execute(select(usage.c.period, usage.c.used_fen)
                                   .where(usage.c.subscriber_id == sub.id)).all())
    assert stored == used


def test_concurrent_outflows_are_counted_one_after_the_other(ctx: Context) -> None:
    sub = open_account(ctx, "+8613800138000", PIN, name="Li Lei",
                       id_number="11010519491231002X")  # tier 1: 10,000 CNY a day
    fund(ctx, sub, 2_000_000)
    pay(ctx, sub, 500_000)
    pay(ctx, sub, 300_000)
    barrier = threading.Barrier(2)

    def attempt(_: int) -> str:
        barrier.wait()
        try:
            pay(ctx, sub, 150_000)
        except LimitExceededError as exc:
            return str(exc.detail["limit"])
        return "ok"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(attempt, range(2)))
    assert outcomes == ["daily", "ok"]
    assert _usage(ctx, sub) == (950_000, 950_000)
    assert ctx.ledger.account(sub.wallet_account_id).balance == 2_000_000 - 950_000
