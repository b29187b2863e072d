"""Accounting worked examples, in the manner of a textbook (after django-hordak's).

Signs: a liability (wallet, merchant payable) has a positive balance when the platform
owes money; an asset (custody reserve, bank clearing) when it holds or is owed money.
"""

from __future__ import annotations

import pytest
from helpers import balances, post_hold, tx, void_hold
from sqlalchemy import Engine

from paycell.clock import ManualClock
from paycell.ledger import Ledger, TransferFlags
from paycell.ledger.audit import audit
from paycell.ledger.chart import Code, open_account, system_account
from paycell.money import allocate

LINKED, PENDING = TransferFlags.LINKED, TransferFlags.PENDING


@pytest.fixture
def ledger(engine: Engine) -> Ledger:
    return Ledger(engine, ManualClock())


def test_top_up_from_a_bank_card_then_the_bank_confirms(ledger: Ledger, engine: Engine) -> None:
    """Alice tops up 100.00 from her ICBC card; at end of day ICBC pays the reserve.

    | step              | debit          | credit         | amount |
    | top-up            | bank clearing  | Alice's wallet | 100.00 |
    | bank confirms     | custody reserve| bank clearing  | 100.00 |
    """
    clearing = system_account(ledger, Code.BANK_CLEARING, "icbc")
    reserve = system_account(ledger, Code.CUSTODY_RESERVE)
    alice = open_account(ledger, "wallet:alice", Code.WALLET)
    ledger.post_one(tx("topup-1", clearing.id, alice.id, 100_00))
    # Until the bank pays, the money is in flight: clearing stands at 100.00 the bank owes.
    assert ledger.account(alice.id).balance == 100_00
    c = ledger.account(clearing.id)
    assert (c.debits_posted, c.credits_posted) == (100_00, 0)
    ledger.post_one(tx("confirm-1", reserve.id, clearing.id, 100_00))
    # The reserve now backs the wallet one for one, and clearing is square.
    assert ledger.account(reserve.id).balance == ledger.account(alice.id).balance == 100_00
    c = ledger.account(clearing.id)
    assert c.debits_posted == c.credits_posted == 100_00
    assert audit(engine).ok


def test_purchase_with_one_percent_commission(ledger: Ledger, engine: Engine) -> None:
    """Bob pays a restaurant chain 88.50; the chain's deal is 1% commission, taken at once.

    | debit             | credit              | amount |
    | Bob's wallet      | merchant payable    |  88.50 |
    | merchant payable  | revenue: commission |   0.89 | (1% of 88.50 = 0.885, rounded
    the largest-remainder way: 88.50 splits into 0.89 commission and 87.61 net)
    """
    funding = system_account(ledger, Code.BANK_CLEARING, "ccb")
    bob = open_account(ledger, "wallet:bob", Code.WALLET)
    shop = open_account(ledger, "merchant:restaurant", Code.MERCHANT_PAYABLE)
    revenue = system_account(ledger, Code.REVENUE_COMMISSION)
    ledger.post_one(tx("fund-bob", funding.id, bob.id, 200_00))
    commission, net = allocate(88_50, [1, 99])
    assert (commission, net) == (89, 87_61)
    results = ledger.post([
        tx("pay-1", bob.id, shop.id, 88_50, LINKED),
        tx("pay-1:commission", shop.id, revenue.id, commission),
    ])
    assert [r.status for r in results] == ["created", "created"]
    assert balances(ledger, bob.id, shop.id, revenue.id) == [111_50, 87_61, 89]
    assert audit(engine).ok


def test_escrow_hold_posted_for_less_releases_the_rest(ledger: Ledger) -> None:
    """Carol buys with escrow (担保支付) for 300.00; the merchant ships part, worth 250.00.

    The hold reserves 300.00 of Carol's 500.00: she can spend 200.00 meanwhile. Posting
    250.00 moves that much and releases 50.00 back to her available balance.
    """
    funding = system_account(ledger, Code.BANK_CLEARING, "icbc")
    carol = open_account(ledger, "wallet:carol", Code.WALLET)
    shop = open_account(ledger, "merchant:games", Code.MERCHANT_PAYABLE)
    ledger.post_one(tx("fund-carol", funding.id, carol.id, 500_00))
    ledger.post_one(tx("escrow-1", carol.id, shop.id, 300_00, PENDING, timeout=10 * 86400))
    acct = ledger.account(carol.id)
    assert (acct.balance, acct.available, acct.debits_pending) == (500_00, 200_00, 300_00)
    assert ledger.account(shop.id).credits_pending == 300_00
    ledger.post_one(post_hold("escrow-1:release", "escrow-1", 250_00))
    acct = ledger.account(carol.id)
    assert (acct.balance, acct.available, acct.debits_pending) == (250_00, 250_00, 0)
    assert ledger.account(shop.id).balance == 250_00
    hold = ledger.hold("escrow-1")
    assert hold is not None and (hold.status, hold.resolved_by) == ("posted", "escrow-1:release")


def test_withdrawal_rejected_by_the_bank_is_voided(ledger: Ledger, engine: Engine) -> None:
    """Dan withdraws 100.00 with a 1.00 fee; the bank rejects it: both holds are voided."""
    funding = system_account(ledger, Code.BANK_CLEARING, "icbc")
    fees = system_account(ledger, Code.REVENUE_FEES)
    dan = open_account(ledger, "wallet:dan", Code.WALLET)
    ledger.post_one(tx("fund-dan", funding.id, dan.id, 150_00))
    ledger.post([
        tx("wd-1", dan.id, funding.id, 100_00, PENDING | LINKED),
        tx("wd-1:fee", dan.id, fees.id, 1_00, PENDING),
    ])
    assert ledger.account(dan.id).available == 49_00
    ledger.post([void_hold("wd-1:void", "wd-1"), void_hold("wd-1:fee:void", "wd-1:fee")])
    acct = ledger.account(dan.id)
    assert (acct.balance, acct.available) == (150_00, 150_00)
    assert ledger.account(fees.id).balance == 0
    assert audit(engine).ok


def test_linked_chain_is_all_or_nothing(ledger: Ledger) -> None:
    """A purchase and its commission leg: if the second fails, the first is not applied."""
    funding = system_account(ledger, Code.BANK_CLEARING, "icbc")
    eve = open_account(ledger, "wallet:eve", Code.WALLET)
    shop = open_account(ledger, "merchant:cinema", Code.MERCHANT_PAYABLE)
    ledger.post_one(tx("fund-eve", funding.id, eve.id, 10_00))
    results = ledger.post([
        tx("pay-2", eve.id, shop.id, 8_00, LINKED),
        tx("pay-2:fee", eve.id, shop.id, 5_00),  # 8 + 5 > 10: overdraft
    ])
    assert [(r.status, r.error and r.error.code) for r in results] == [
        ("failed", "linked_event_failed"), ("failed", "overdraft")]
    assert balances(ledger, eve.id, shop.id) == [10_00, 0]
    assert ledger.transfer("pay-2") is None


def test_agent_float_and_reserve_cannot_be_exceeded(ledger: Ledger) -> None:
    """An agent outlet deposits 500.00 cash at the bank and gets 500.00 of e-float.

    | step         | debit           | credit          | amount |
    | float bought | custody reserve | agent float     | 500.00 |
    | cash-in      | agent float     | Frank's wallet  | 400.00 |
    The agent cannot cash in beyond its float, and the reserve cannot pay out more than
    it holds.
    """
    reserve = system_account(ledger, Code.CUSTODY_RESERVE)
    clearing = system_account(ledger, Code.BANK_CLEARING, "icbc")
    agent = open_account(ledger, "agent:outlet-7", Code.AGENT_FLOAT)
    frank = open_account(ledger, "wallet:frank", Code.WALLET)
    ledger.post_one(tx("float-1", reserve.id, agent.id, 500_00))
    ledger.post_one(tx("cashin-1", agent.id, frank.id, 400_00))
    assert balances(ledger, reserve.id, agent.id, frank.id) == [500_00, 100_00, 400_00]
    r = ledger.post([tx("cashin-2", agent.id, frank.id, 100_01)])[0]
    assert r.error is not None and r.error.code == "overdraft"
    r = ledger.post([tx("payout-1", clearing.id, reserve.id, 500_01)])[0]
    assert r.error is not None and r.error.code == "credits_exceed_debits"
    assert balances(ledger, reserve.id, agent.id, frank.id) == [500_00, 100_00, 400_00]


def test_before_and_hook_run_in_the_ledger_transaction(ledger: Ledger, engine: Engine) -> None:
    """A caller's own rule can veto the movement (nothing written), and its own record is
    written atomically with it."""
    from helpers import snapshot
    from sqlalchemy import text

    from paycell.errors import ConflictError

    funding = system_account(ledger, Code.BANK_CLEARING, "icbc")
    gina = open_account(ledger, "wallet:gina", Code.WALLET)
    seen: list[str] = []

    def veto(conn: object) -> None:
        raise ConflictError("daily limit reached")

    before = snapshot(engine)
    with pytest.raises(ConflictError):
        ledger.post([tx("veto-1", funding.id, gina.id, 1_00)], before=veto)
    assert snapshot(engine) == before

    def record(conn: object, results: list) -> None:
        # The balances are already moved in this transaction; the journal row follows the
        # hook (the chain head, every transaction's shared lock, is taken last).
        seen.extend(r.status for r in results)
        assert conn.execute(text(f"SELECT credits_posted FROM ledger_accounts WHERE id = "
                                 f"{gina.id}")).scalar_one() == 1_00  # type: ignore[attr-defined]

    ledger.post([tx("ok-1", funding.id, gina.id, 1_00)], hook=record)
    assert seen == ["created"]
    assert ledger.transfer("ok-1") is not None


def test_a_posting_batch_writes_balances_and_journal_as_single_posts_do(
        ledger: Ledger, engine: Engine) -> None:
    """A batch (ledger/posting.py) writes its balances and reserves the journal's numbers in
    one statement on PostgreSQL (``pgbulk.add_and_reserve``): the balances, the chain and
    the audit come out as the same transfers posted one at a time."""
    from paycell.ledger.posting import Posting

    bank = system_account(ledger, Code.BANK_CLEARING, "icbc")
    fee = open_account(ledger, "wallet:batch-fee", Code.WALLET)
    a = open_account(ledger, "wallet:batch-a", Code.WALLET)
    b = open_account(ledger, "wallet:batch-b", Code.WALLET)
    ledger.post_one(tx("seed-a", bank.id, a.id, 500_00))
    head = ledger.post_one(tx("seed-b", bank.id, b.id, 1_00))

    def batch(conn: object) -> list[object]:
        p = Posting(ledger, conn, [a.id, b.id, fee.id])  # type: ignore[arg-type]
        for n, (dr, cr, amount) in enumerate([(a.id, b.id, 120_00), (b.id, fee.id, 1_20),
                                              (a.id, b.id, 30_00)]):
            p.post(tx(f"batch-{n}", dr, cr, amount))
        return p.finish()

    results = ledger.transaction(batch)
    seqs = [r.transfer.seq for r in results]  # type: ignore[attr-defined]
    assert seqs == [head.seq + 1, head.seq + 2, head.seq + 3]
    assert balances(ledger, a.id, b.id) == [350_00, 149_80]
    assert audit(engine).ok
    ledger.post_one(tx("after", a.id, b.id, 50))  # the head moved on: the chain continues
    assert audit(engine).ok
