"""The demo world: loads fast, loads twice without change, and keeps the ledger clean."""

from __future__ import annotations

import time
from collections import Counter
from datetime import date

from sqlalchemy import Engine

from paycell.config import Settings
from paycell.context import build_context
from paycell.demo import DEMO_PIN, MERCHANTS, demo_start, load_demo, msisdns, open_world, plan
from paycell.ledger.audit import audit
from paycell.ledger.model import TransferFlags
from paycell.ledger.store import Ledger
from paycell.subscribers.service import find_by_msisdn, verify_pin
from paycell.worker import Worker

EXPIRING_HOLD = "demo:escrow:0007"  # the one the demo leaves for the worker (see test_serve)


def test_load_twice_changes_nothing(engine: Engine) -> None:
    t0 = time.monotonic()
    first = load_demo(engine)
    elapsed = time.monotonic() - t0
    report = audit(engine)
    assert report.ok, [c for c in report.checks if not c.ok]
    assert first.existing == 0
    assert first.created == report.transfers
    assert 250 <= report.transfers <= 500
    assert report.accounts == first.accounts == 7 + 6 + 20
    assert len(set(first.subscribers.values())) == 20
    second = load_demo(engine)
    again = audit(engine)
    assert again.ok
    assert (again.accounts, again.transfers) == (report.accounts, report.transfers)
    assert (second.created, second.existing) == (0, first.created)
    assert second.balances == first.balances
    assert second.wallet_total_fen == first.wallet_total_fen
    assert second.subscribers == first.subscribers
    assert elapsed < 15, f"the demo took {elapsed:.1f}s to load"


def test_wallets_never_go_negative_and_the_world_is_as_described(engine: Engine) -> None:
    result = load_demo(engine)
    ctx = build_context(engine)
    ledger = ctx.ledger
    subs = [find_by_msisdn(ctx, m) for m in msisdns()]
    assert all(s is not None and s.state == "active" and s.tier == 1 and s.name for s in subs)
    wallets = [ledger.account(s.wallet_account_id) for s in subs if s is not None]
    assert [w.name for w in wallets] == [f"wallet:{s.id}" for s in subs if s is not None]
    assert result.subscribers == {s.msisdn: s.id for s in subs if s is not None}
    for s in subs[:2]:
        assert s is not None
        verify_pin(ctx, s.id, DEMO_PIN)  # the PIN the summary prints
    assert len({w.id for w in wallets}) == 20
    assert all(w.balance >= 0 and w.available >= 0 for w in wallets)
    assert sum(w.balance for w in wallets) == result.wallet_total_fen > 0
    assert all(m.startswith("+86138") and len(m) == 14 for m in msisdns())
    assert len([n for n in result.balances if n.startswith("merchant_payable:demo:")]) == 6
    assert all(result.balances[f"merchant_payable:demo:{m.slug}"] > 0 for m in MERCHANTS)
    assert result.balances["revenue_commission:main:CNY"] > 0
    # Escrow: posted (one for less), voided, and one left pending for the worker.
    assert Counter(result.holds.values()) == {"posted": 4, "voided": 2, "pending": 1}
    assert result.holds[EXPIRING_HOLD] == "pending"


def test_the_worker_expires_the_hold_left_behind(db_url: str, engine: Engine) -> None:
    load_demo(engine)
    ledger = Ledger(engine)  # the real clock: the demo's traffic ended yesterday
    worker = Worker(ledger, Settings(_env_file=None, database_url=db_url))
    assert worker.run_once() == {"expire_holds": 1}
    hold = ledger.hold(EXPIRING_HOLD)
    assert hold is not None and hold.status == "expired"
    assert audit(engine).ok
    assert load_demo(engine).created == 0  # and loading again still changes nothing


def test_the_plan_is_deterministic_and_dated_in_the_past(engine: Engine) -> None:
    world = open_world(build_context(engine))
    start = demo_start(date(2026, 5, 4))
    assert start.isoformat() == "2026-04-30T16:00:00+00:00"  # 1 May 00:00 in Beijing
    a = plan(world, 0)
    b = plan(world, 0)
    assert a == b
    ids = [r.id for _, reqs in a for r in reqs]
    assert len(ids) == len(set(ids))
    times = [at for at, _ in a]
    assert times == sorted(times) and times[-1] < 3 * 86_400 * 1_000_000
    kinds = Counter(r.code for _, reqs in a for r in reqs)
    # every purchase and every escrow confirmation has its commission leg
    assert kinds[2002] == kinds[2001] + kinds[4002] and kinds[2001] > 50
    linked = [r for _, reqs in a for r in reqs if r.flags & TransferFlags.LINKED]
    assert len(linked) >= kinds[2001]
