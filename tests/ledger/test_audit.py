"""``paycell audit`` finds tampering, each kind by the check meant for it.

A ledger with some traffic (plain and linked transfers, holds pending, posted, voided and
expired) audits clean. Then one tampering per test, written straight into the database as
someone bypassing the ledger would, and the exact set of checks that must fail. That the
journal refuses UPDATE and DELETE while its trigger is in place is tested in
tests/test_harness.py; here the trigger is first disabled, as a database owner could.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import post_hold, tx, void_hold
from sqlalchemy import Engine, text

from paycell.clock import ManualClock
from paycell.ledger import Ledger, TransferFlags
from paycell.ledger.audit import AuditReport, audit
from paycell.ledger.chart import Code, open_account, system_account
from paycell.ledger.journal import chain

LINKED, PENDING = TransferFlags.LINKED, TransferFlags.PENDING
BALANCED = "debits equal credits per currency"
FLAGS = "account flags respected"
SUMS = "balances equal the sum of their transfers"
ORPHANS = "transfers name existing accounts"
HOLDS = "holds agree with the journal"
CHAIN = "journal hash chain intact"
PAYCELL = Path(sys.executable).with_name("paycell")


@dataclass
class Traffic:
    ledger: Ledger
    a: int
    b: int
    shop: int
    n_transfers: int


@pytest.fixture
def traffic(engine: Engine) -> Traffic:
    clock = ManualClock()
    ledger = Ledger(engine, clock)
    src = system_account(ledger, Code.BANK_CLEARING, "icbc").id
    fee = system_account(ledger, Code.REVENUE_FEES).id
    a = open_account(ledger, "wallet:a", Code.WALLET).id
    b = open_account(ledger, "wallet:b", Code.WALLET).id
    shop = open_account(ledger, "merchant:shop", Code.MERCHANT_PAYABLE).id
    batches = [
        [tx("fund-a", src, a, 100_00), tx("fund-b", src, b, 50_00)],
        [tx("pay:mv", a, shop, 30_00, LINKED), tx("pay:fee", a, fee, 1_00)],
        [tx("h-pending", a, shop, 5_00, PENDING), tx("h-posted", a, shop, 10_00, PENDING),
         tx("h-voided", b, shop, 3_00, PENDING),
         tx("h-expiring", b, shop, 4_00, PENDING, timeout=60)],
        [post_hold("post-1", "h-posted", 7_00), void_hold("void-1", "h-voided")],
    ]
    for batch in batches:
        assert all(r.status == "created" for r in ledger.post(batch))
    clock.advance(61)
    assert ledger.expire_holds() == 1
    ledger.post_one(tx("last", b, a, 2_00))  # the journal ends with a plain transfer
    holds = {h: ledger.hold(h) for h in ("h-pending", "h-posted", "h-voided", "h-expiring")}
    assert {h: s.status if s else None for h, s in holds.items()} == {
        "h-pending": "pending", "h-posted": "posted", "h-voided": "voided",
        "h-expiring": "expired"}
    return Traffic(ledger, a, b, shop, n_transfers=12)


def failed(report: AuditReport) -> set[str]:
    return {c.name for c in report.checks if not c.ok}


def check(report: AuditReport, name: str) -> str:
    """The named check's problems, as one string to search."""
    (c,) = [c for c in report.checks if c.name == name]
    return "\n".join(c.problems)


def unlock_journal(engine: Engine) -> None:
    """What a database owner could do: switch off the append-only trigger."""
    with engine.begin() as c:
        if engine.dialect.name == "postgresql":
            c.execute(text("ALTER TABLE ledger_transfers"
                           " DISABLE TRIGGER ledger_transfers_append_only"))
        else:
            c.execute(text("DROP TRIGGER ledger_transfers_no_update"))
            c.execute(text("DROP TRIGGER ledger_transfers_no_delete"))


def tamper(engine: Engine, *statements: str) -> None:
    with engine.begin() as c:
        for s in statements:
            assert c.execute(text(s)).rowcount == 1, s


def test_a_ledger_with_traffic_audits_clean(traffic: Traffic, engine: Engine) -> None:
    report = audit(engine)
    assert [c.name for c in report.checks] == [BALANCED, FLAGS, SUMS, ORPHANS, HOLDS, CHAIN]
    assert failed(report) == set(), [(c.name, c.detail) for c in report.checks]
    assert report.ok
    assert (report.transfers, report.accounts) == (traffic.n_transfers, 5)


def test_a_changed_amount_breaks_the_hash_chain_and_the_sums(
    traffic: Traffic, engine: Engine,
) -> None:
    unlock_journal(engine)
    tamper(engine, "UPDATE ledger_transfers SET amount = amount + 1 WHERE id = 'pay:mv'")
    report = audit(engine)
    assert failed(report) == {CHAIN, SUMS}
    assert "pay:mv" in check(report, CHAIN) and "altered" in check(report, CHAIN)
    assert f"account {traffic.a} " in check(report, SUMS)


def test_a_changed_amount_with_a_rewritten_chain_is_still_caught_by_the_sums(
    traffic: Traffic, engine: Engine,
) -> None:
    """A tamperer who re-hashes every later row and the chain head: balances catch it."""
    unlock_journal(engine)
    tamper(engine, "UPDATE ledger_transfers SET amount = amount + 1 WHERE id = 'pay:mv'")
    with engine.connect() as c:
        ids = c.execute(text("SELECT id FROM ledger_transfers ORDER BY seq")).scalars().all()
    journal = [traffic.ledger.transfer(i) for i in ids]  # amount as tampered
    at = ids.index("pay:mv")
    relinked = chain([t for t in journal[at:] if t is not None], at, journal[at - 1].hash)
    with engine.begin() as c:
        for t in relinked:
            c.execute(text("UPDATE ledger_transfers SET prev_hash = :p, hash = :h"
                           " WHERE id = :i"), {"p": t.prev_hash, "h": t.hash, "i": t.id})
        c.execute(text("UPDATE ledger_chain_head SET hash = :h WHERE id = 1"),
                  {"h": relinked[-1].hash})
    report = audit(engine)
    assert failed(report) == {SUMS}


@pytest.mark.parametrize("cover_up", [False, True], ids=["as-is", "balances-fixed-up"])
def test_deleting_the_last_transfer_is_caught_by_the_chain_head(
    cover_up: bool, traffic: Traffic, engine: Engine,
) -> None:
    """Dropping the journal's tail leaves a chain that verifies up to its new end: only
    the chain head (written in the same transaction as every batch) shows it is gone. A
    tamperer who also reverses the transfer's effect on the balances is caught by it alone.
    """
    unlock_journal(engine)
    tamper(engine, "DELETE FROM ledger_transfers WHERE id = 'last'"
                   " AND seq = (SELECT MAX(seq) FROM ledger_transfers)")
    if cover_up:  # 'last' moved 2.00 from b to a
        tamper(engine,
               f"UPDATE ledger_accounts SET credits_posted = credits_posted - 200"
               f" WHERE id = {traffic.a}",
               f"UPDATE ledger_accounts SET debits_posted = debits_posted - 200"
               f" WHERE id = {traffic.b}")
    report = audit(engine)
    assert failed(report) == ({CHAIN} if cover_up else {CHAIN, SUMS})
    assert "chain head" in check(report, CHAIN)


def test_deleting_a_transfer_inside_the_journal_breaks_the_chain(
    traffic: Traffic, engine: Engine,
) -> None:
    unlock_journal(engine)
    tamper(engine, "DELETE FROM ledger_transfers WHERE id = 'fund-b'")
    report = audit(engine)
    assert CHAIN in failed(report)
    assert "jumps" in check(report, CHAIN) and "does not link" in check(report, CHAIN)


def test_a_balance_written_outside_the_ledger_unbalances_the_books(
    traffic: Traffic, engine: Engine,
) -> None:
    tamper(engine, f"UPDATE ledger_accounts SET credits_posted = credits_posted + 100"
                   f" WHERE id = {traffic.a}")
    report = audit(engine)
    assert failed(report) == {BALANCED, SUMS}
    assert f"account {traffic.a} " in check(report, SUMS)


def test_a_hold_marked_posted_without_a_post_transfer(traffic: Traffic, engine: Engine) -> None:
    tamper(engine, "UPDATE ledger_holds SET status = 'posted' WHERE transfer_id = 'h-pending'")
    report = audit(engine)
    assert failed(report) == {HOLDS}
    assert "h-pending is posted" in check(report, HOLDS)


def _cli_audit(db_url: str) -> subprocess.CompletedProcess[str]:
    # Wide enough that rich does not wrap a check's name over two table lines.
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([str(PAYCELL), "audit", "--database-url", db_url],
                          capture_output=True, text=True, timeout=60, env=env)


def test_the_cli_exits_0_when_clean_and_1_naming_the_failed_checks(
    traffic: Traffic, engine: Engine, db_url: str,
) -> None:
    clean = _cli_audit(db_url)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "audit clean" in clean.stdout
    tamper(engine, f"UPDATE ledger_accounts SET credits_posted = credits_posted + 100"
                   f" WHERE id = {traffic.a}")
    bad = _cli_audit(db_url)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "audit failed" in bad.stdout
    assert BALANCED in bad.stdout and SUMS in bad.stdout, bad.stdout
