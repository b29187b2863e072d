"""The demo world: loads fast, loads twice without change, and keeps the ledger clean."""

from __future__ import annotations

import csv
import socket
import uuid
from collections import Counter
from datetime import date
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from paycell.api.app import create_app
from paycell.config import Settings
from paycell.context import build_context
from paycell.demo import DEMO_PIN, MERCHANTS, demo_start, load_demo, msisdns, open_world, plan
from paycell.demo_onsite import KEYS_FILE as TERMINAL_KEYS_FILE
from paycell.demo_payments import KEYS_FILE, ORDERS
from paycell.demo_wallets import (
    AGENT_KEY_FILE,
    CASH_INS,
    FLOAT_FEN,
    INVITEE,
    VOUCHER_CSV,
    VOUCHER_FACE_FEN,
    VOUCHERS_REDEEMED,
)
from paycell.funding.agents import authenticate_agent
from paycell.gateways.merchant_sim import MerchantSimulator
from paycell.gateways.simkit import SimServer
from paycell.gateways.sms import RecordingSms
from paycell.ledger.audit import audit
from paycell.ledger.model import TransferFlags
from paycell.ledger.store import Ledger
from paycell.ledger.tables import transfers as ledger_transfers
from paycell.merchants.signing import MerchantAuth
from paycell.merchants.tables import merchants
from paycell.notifications.delivery import deliver_due
from paycell.notifications.tables import notifications
from paycell.payments import escrow, orders
from paycell.subscribers.service import find_by_msisdn, verify_pin
from paycell.worker import Worker

EXPIRING_HOLD = "demo:escrow:0007"  # the one the demo leaves for the worker (see test_serve)
# Through the funding services: 5 redemptions, a float top-up, 3 cash-ins, 4 P2P transfers.
WALLET_TRANSFERS = VOUCHERS_REDEEMED + 1 + len(CASH_INS) + 4
# ... on 3 more accounts: voucher clearing, the agent's float, P2P claimable.
WALLET_ACCOUNTS = 3
PAYMENT_ACCOUNTS = 3  # the demo merchants' payables
# 4 card purses, 3 terminal deposits (2 shops, the transit operator), its payable
ONSITE_ACCOUNTS = 8
# 2 partner payables, the channel expense, the card network's fee share, recon suspense
FINANCE_ACCOUNTS = 5
CLOSED_ACCOUNTS = 1  # the terminated merchant's payable (merchants/demo.py: seed_closed)


def test_load_twice_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    tmp_path = tmp_path / "var"  # the SQLite database may live in tmp_path itself
    first = load_demo(engine, out_dir=tmp_path)
    report = audit(engine)
    assert report.ok, [c for c in report.checks if not c.ok]
    assert first.existing == 0
    assert first.payments is not None and first.payments.transfers_created > 15
    assert first.onsite is not None and first.onsite.transfers_created > 15
    assert first.recon is not None
    assert (first.created + WALLET_TRANSFERS + first.payments.transfers_created
            + first.onsite.transfers_created + _finance_transfers(engine)
            + first.recon.transfers_created == report.transfers)
    assert 250 <= report.transfers <= 500
    assert first.accounts == 7 + 6 + 20
    assert report.accounts == (first.accounts + WALLET_ACCOUNTS + PAYMENT_ACCOUNTS
                               + ONSITE_ACCOUNTS + FINANCE_ACCOUNTS + CLOSED_ACCOUNTS)
    files = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert set(files) == {VOUCHER_CSV, AGENT_KEY_FILE, KEYS_FILE, TERMINAL_KEYS_FILE}
    assert first.wallets is not None and first.wallets.agent_key is not None
    assert files[AGENT_KEY_FILE].strip() == first.wallets.agent_key
    assert len(set(first.subscribers.values())) == 20
    with engine.connect() as conn:  # closed down through maker-checker
        closed = conn.execute(select(merchants.c.state).where(
            merchants.c.name == "Old Town Noodles")).scalar_one()
    assert closed == "terminated"
    onsite_rows = _onsite_rows(engine)
    second = load_demo(engine)
    again = audit(engine)
    assert again.ok
    assert (again.accounts, again.transfers) == (report.accounts, report.transfers)
    assert (second.created, second.existing) == (0, first.created)
    assert second.balances == first.balances
    assert second.wallet_total_fen == first.wallet_total_fen
    assert second.subscribers == first.subscribers
    # The wallet features are found again, not made twice; the secrets stay where they were.
    assert second.wallets is not None
    assert second.wallets.agent_key is None  # shown once: it is in the file
    assert second.wallets.voucher_batch_id == first.wallets.voucher_batch_id
    assert (second.wallets.vouchers_redeemed, second.wallets.cash_ins) == (
        first.wallets.vouchers_redeemed, first.wallets.cash_ins)
    assert second.wallets.agent_float_fen == first.wallets.agent_float_fen
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == files
    assert (tmp_path / VOUCHER_CSV).stat().st_mode & 0o077 == 0
    assert (tmp_path / KEYS_FILE).stat().st_mode & 0o077 == 0
    assert (tmp_path / TERMINAL_KEYS_FILE).stat().st_mode & 0o077 == 0
    # Merchant payments: the same orders and notifications, no new texts, no transfers.
    p, q = first.payments, second.payments
    assert q is not None and q.transfers_created == 0 and q.texts == []
    assert (q.orders, q.notifications, q.trade_nos) == (p.orders, p.notifications,
                                                         p.trade_nos)
    assert [k for _, k, _, _ in q.merchants] == [k for _, k, _, _ in p.merchants]
    # On-site payment: the same cards, terminals, batches and jobs; no new rows.
    o, n = first.onsite, second.onsite
    assert n is not None and n.transfers_created == 0
    assert (n.cards, n.terminals, n.batches, n.gate_batch, n.hot_list, n.ota_jobs) == (
        o.cards, o.terminals, o.batches, o.gate_batch, o.hot_list, o.ota_jobs)
    assert _onsite_rows(engine) == onsite_rows


def _finance_transfers(engine: Engine) -> int:
    """The partners' and settlement parts' transfers: their codes (6001-6299)."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ledger_transfers).where(
            ledger_transfers.c.code.between(6000, 6299))).scalar_one())


def _onsite_rows(engine: Engine) -> dict[str, int]:
    from paycell.onsite import ecash, ota, terminal_tables
    from paycell.onsite.cards import onsite_cards

    tables = [onsite_cards, terminal_tables.terminals, terminal_tables.batches,
              terminal_tables.authorisations, terminal_tables.pos_refunds, ecash.ecash_loads,
              ecash.ecash_batches, ecash.ecash_records, ota.ota_jobs]
    with engine.connect() as conn:
        return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in tables}


def test_on_site_payment_is_in_the_demo(engine: Engine, tmp_path: Path) -> None:
    o = load_demo(engine, out_dir=tmp_path / "var").onsite
    assert o is not None
    assert [state for *_, state in o.cards] == ["active", "active", "active", "lost"]
    assert len(o.terminals) == 3 and all(s == "active" for *_, s in o.terminals)
    shop1, shop1b, box = o.batches
    assert (shop1.state, shop1.balanced, shop1.approved_count, shop1.reversed_count) == (
        "closed", True, 5, 1)
    assert (shop1b.state, shop1b.balanced, shop1b.refunded_count) == ("closed", True, 1)
    assert (box.state, box.approved_count, box.declined_count) == ("open", 2, 2)
    assert o.gate_batch is not None and o.gate_batch[:2] == (6, 6) and o.gate_batch[3] > 0
    assert sorted(e.reason for e in o.hot_list) == ["ecash_overspend", "lost"]
    assert o.ota_jobs == {"confirmed": 9}  # install + personalise x 4, the lost card's lock
    keys = (tmp_path / "var" / TERMINAL_KEYS_FILE).read_text()
    assert all(tid in keys for tid, *_ in o.terminals)
    with engine.connect() as conn:
        from paycell.onsite.terminal_tables import authorisations

        declined = set(conn.execute(select(authorisations.c.response_code).where(
            authorisations.c.state == "declined")).scalars())
    assert declined == {"61", "05"}
    assert audit(engine).ok


def test_the_funding_features_are_in_the_demo(engine: Engine, tmp_path: Path) -> None:
    tmp_path = tmp_path / "var"
    w = load_demo(engine, out_dir=tmp_path).wallets
    assert w is not None
    assert (w.vouchers_redeemed, w.vouchers_unredeemed) == (VOUCHERS_REDEEMED,
                                                            20 - VOUCHERS_REDEEMED)
    assert w.cash_ins == len(CASH_INS)
    assert w.agent_float_fen == FLOAT_FEN - sum(amount for _, amount in CASH_INS)
    assert (w.p2p_completed, w.p2p_pending_claim) == (3, 1)
    assert w.voucher_csv == tmp_path / VOUCHER_CSV and w.notes == []
    ctx = build_context(engine)
    assert w.agent_key is not None
    assert authenticate_agent(ctx, w.agent_key).code == w.agent_code
    with (tmp_path / VOUCHER_CSV).open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == w.vouchers_unredeemed
    assert all(r["face_value_cny"] == "50.00" for r in rows)
    # The number without a wallet was invited by SMS; its money waits in a hold.
    invite = RecordingSms(engine, ctx.clock).last_to(INVITEE)
    assert invite is not None and "sent you 30.00 CNY" in invite
    assert audit(engine).ok


def test_a_newcomer_redeems_a_demo_voucher(db_url: str, engine: Engine,
                                           tmp_path: Path) -> None:
    tmp_path = tmp_path / "var"
    load_demo(engine, out_dir=tmp_path)
    with (tmp_path / VOUCHER_CSV).open() as f:
        card = next(csv.DictReader(f))
    settings = Settings(_env_file=None, database_url=db_url, run_workers=False,
                        simulators=False)
    msisdn = msisdns()[10]
    with TestClient(create_app(settings, engine=engine)) as client:
        r = client.post("/v1/wallet/login", json={"msisdn": msisdn, "pin": DEMO_PIN},
                        headers={"Idempotency-Key": str(uuid.uuid4())})
        assert r.status_code == 200, r.text
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        before = client.get("/v1/wallet", headers=auth).json()["balance_fen"]
        r = client.post("/v1/wallet/vouchers/redeem",
                        json={"card_number": card["card_number"], "secret": card["secret"]},
                        headers={**auth, "Idempotency-Key": str(uuid.uuid4())})
        assert r.status_code == 200, r.text
        after = client.get("/v1/wallet", headers=auth).json()["balance_fen"]
    assert after - before == VOUCHER_FACE_FEN
    assert audit(engine).ok
    again = load_demo(engine, out_dir=tmp_path)
    assert again.created == 0 and again.wallets is not None
    assert again.wallets.vouchers_redeemed == VOUCHERS_REDEEMED + 1


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_merchant_payments_and_their_notifications(db_url: str, engine: Engine,
                                                   tmp_path: Path) -> None:
    """Orders in every state, escrow and a dispute settled by two operators, SMS payments;
    then ``paycell serve`` (a real uvicorn on the port the demo's notify URLs name) takes a
    new signed order, and its worker job delivers every notification to the demo merchant,
    which finds each signature valid."""
    port = _free_port()
    settings = Settings(_env_file=None, database_url=db_url, port=port, run_workers=False)
    p = load_demo(engine, settings=settings, out_dir=tmp_path / "var").payments
    assert p is not None
    assert p.orders == {"paid": 9, "held": 1, "released": 1, "partially_refunded": 2,
                        "refunded": 2, "closed": 2, "waiting": 2}
    assert [ref for ref, *_ in p.waiting] == ["INK-0006", "PRT-0006"]
    assert [ref for ref, *_ in p.held] == ["PRT-0004"]
    ctx = build_context(engine, settings=settings)
    demo_orders = [o for m, *_ in p.merchants for o in orders.list_orders(ctx,
                                                                          merchant_id=m.id)]
    assert len(demo_orders) == len(ORDERS) + 1  # and the one paid by texting PAY
    assert Counter(o.paid_via for o in demo_orders)["sms"] == 3  # 2 code replies and PAY
    disputed = orders.get_order(ctx, p.trade_nos["INK-0004"])
    d = escrow.dispute_of_order(ctx, disputed.id)
    assert (d.state, d.outcome, d.buyer_fen) == ("resolved", "split", 10_000)
    assert (d.decided_by, d.approved_by) == ("demo-support", "demo-supervisor")
    held = orders.get_order(ctx, p.trade_nos["PRT-0004"])
    assert held.release_at is not None and held.release_at > ctx.clock.now_us()
    texts = [text.split()[0] for _, text, _ in p.texts]
    replies = [reply.split(" ", 2)[:2] for _, _, reply in p.texts]
    assert [texts[0], texts[1], texts[3]] == ["BAL", "PAY", "TRF"]
    assert replies == [["Your", "paycell"], ["Pay", "12.50"], ["Paid", "12.50"],
                       ["Send", "20.00"], ["Sent", "20.00"]]
    assert audit(engine).ok

    app = create_app(settings, engine=engine)
    sim: MerchantSimulator = app.state.merchant_sim
    server = SimServer(app, port=port, lifespan="on").start()
    try:
        keys = (tmp_path / "var" / KEYS_FILE).read_text().splitlines()
        _, key_id, secret, *_ = next(line for line in keys if line.startswith("M1")).split()
        with httpx.Client(base_url=server.url, auth=MerchantAuth(key_id, secret),
                          trust_env=False, timeout=10) as merchant:
            r = merchant.post("/v1/payments", json={
                "out_trade_no": "TEST-1", "amount_fen": 990, "subject": "Tea",
                "payer_msisdn": msisdns()[0]}, headers={"Idempotency-Key": "t1"})
        assert r.status_code == 201, r.text
        assert deliver_due(ctx) == p.notifications["pending"]
    finally:
        server.stop()
    with engine.connect() as conn:
        states = Counter(conn.execute(select(notifications.c.state)).scalars())
    assert states == {"delivered": p.notifications["pending"]}
    got = sim.listing()
    assert len(got) == p.notifications["pending"]
    assert all(r.verified and r.answered == 200 and r.attempt == 1 for r in got)
    assert {r.merchant_code for r in got} == {m.code for m, *_ in p.merchants}
    assert {r.event for r in got} >= {"payment.paid", "payment.held", "payment.released",
                                      "payment.closed", "payment.refunded",
                                      "payment.disputed", "payment.partially_refunded"}
