"""Suspense resolution with two operators (maker-checker, logged), carrier and transit
statements, and the merchant daily bill (another merchant's is refused)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from cash_helpers import OPERATOR, fund, idem, wallet  # type: ignore[import-not-found]
from fastapi.testclient import TestClient
from recon_helpers import balance, operator, statement, topup
from sqlalchemy import text

from paycell.context import Context
from paycell.ledger import TransferRequest
from paycell.ledger.chart import Code, TransferCode
from paycell.merchants.service import create_active_merchant
from paycell.merchants.signing import MerchantAuth
from paycell.reconciliation import service

ITEMS = "/v1/operator/reconciliation/items"


def test_write_off_needs_a_second_operator(ctx: Context, tmp_path: Path,
                                           client: TestClient) -> None:
    service.reconcile_file(ctx, statement(tmp_path / "s.csv", [("in", "topup:tu_zz", 700)]))
    item = service.list_items(ctx)[0]
    assert item.category == "missing_ours" and item.suspense_fen == 700
    _, alice = operator(ctx, "alice")
    _, bob = operator(ctx, "bob")
    got = client.post(f"{ITEMS}/{item.id}/resolve", headers={**alice, **idem()},
                      json={"action": "write_off", "note": "bank fee refund, no owner"})
    assert got.status_code == 202, got.text
    approval = got.json()["approval_id"]
    assert balance(ctx, Code.SUSPENSE, "recon") == 700  # nothing moved yet
    same = client.post(f"/v1/approvals/{approval}/approve", headers=idem(**alice))
    assert same.status_code == 403 and same.json()["code"] == "approval_same_operator"
    ok = client.post(f"/v1/approvals/{approval}/approve", headers=idem(**bob))
    assert ok.status_code == 200, ok.text
    assert balance(ctx, Code.SUSPENSE, "recon") == 0
    assert balance(ctx, Code.REVENUE_FEES, "recon_writeoff") == 700
    log = client.get("/v1/operator/reconciliation/resolutions", headers=OPERATOR).json()
    assert log[0]["proposed_by"] == "alice" and log[0]["approved_by"] == "bob"
    assert log[0]["action"] == "write_off" and log[0]["amount_fen"] == 700
    again = client.post(f"{ITEMS}/{item.id}/resolve", headers={**alice, **idem()},
                        json={"action": "write_off", "note": "again"})
    assert again.status_code == 409 and again.json()["code"] == "recon_item_resolved"


def test_pass_on_to_the_payer(ctx: Context, tmp_path: Path, client: TestClient) -> None:
    sub, _ = wallet(ctx)
    service.reconcile_file(ctx, statement(tmp_path / "s.csv", [("in", "topup:tu_lost", 500)]))
    item = service.list_items(ctx)[0]
    _, alice = operator(ctx, "alice")
    _, bob = operator(ctx, "bob")
    bad = client.post(f"{ITEMS}/{item.id}/resolve", headers={**alice, **idem()},
                      json={"action": "pass_on", "note": "x", "target": "wallet:+0"})
    assert bad.status_code == 422 and bad.json()["code"] == "recon_resolution_invalid"
    accept = client.post(f"{ITEMS}/{item.id}/resolve", headers={**alice, **idem()},
                         json={"action": "accept", "note": "x"})
    assert accept.status_code == 422  # it parked money
    got = client.post(f"{ITEMS}/{item.id}/resolve", headers={**alice, **idem()}, json={
        "action": "pass_on", "note": "the payer's top-up", "target": f"wallet:{sub.msisdn}"})
    assert got.status_code == 202
    client.post(f"/v1/approvals/{got.json()['approval_id']}/approve", headers=idem(**bob))
    assert ctx.ledger.account(sub.wallet_account_id).balance == 500


def test_carrier_statement(ctx: Context, tmp_path: Path) -> None:
    sub, _ = wallet(ctx)
    a = topup(ctx, sub, 2_000, bank="cmcc", source="phone_bill")
    b = topup(ctx, sub, 3_000, bank="cmcc", source="phone_bill")
    s = service.reconcile_file(ctx, statement(
        tmp_path / "c.csv", [("in", a, 2_000), ("in", b, 3_000)], source="carrier",
        partner="cmcc", memo="话费充值"), encoding="utf-8")
    assert s.counts == {"matched": 2}
    assert balance(ctx, Code.CARRIER_RECEIVABLE, "cmcc") == 0
    assert balance(ctx, Code.CUSTODY_RESERVE) == 5_000


def test_transit_fares_move_no_money(ctx: Context, tmp_path: Path) -> None:
    rail = create_active_merchant(ctx, name="Light Rail", category="transit")
    with ctx.engine.begin() as conn:
        for atc, fen in ((1, 300), (2, 400)):
            conn.execute(text(
                "INSERT INTO ecash_records (batch_id, terminal_id, merchant_id, card_id, pan, "
                "psn, atc, amount_fen, cleared_fen, excess_fen, txn_date, tc, created_at) "
                "VALUES (1, 'G1', :m, 1, '6200000000000001', '01', :atc, :fen, :fen, 0, "
                "'260101', 'TC', :now)"), {"m": rail.merchant.id, "atc": atc, "fen": fen,
                                            "now": ctx.clock.now_us()})
    s = service.reconcile_file(ctx, statement(
        tmp_path / "t.csv", [("in", "6200000000000001:01:1", 300),
                             ("in", "6200000000000001:01:9", 250)],
        source="transit", partner=rail.merchant.code, memo="闸机"))
    assert s.counts == {"matched": 1, "missing_ours": 1, "missing_theirs": 1}
    assert s.suspense_fen == 0
    assert all(i.counter == "none" for i in service.list_items(ctx))


def _sale(ctx: Context, m: object, amount: int, n: int) -> None:
    sub, _ = wallet(ctx)
    fund(ctx, sub, amount)
    ctx.ledger.post_one(TransferRequest(f"pay:P{n:020d}", sub.wallet_account_id,
                                        m.merchant.payable_account_id, amount,  # type: ignore[attr-defined]
                                        code=int(TransferCode.PURCHASE), ref="sale"))


def test_merchant_bill_only_ones_own(ctx: Context, client: TestClient) -> None:
    a = create_active_merchant(ctx, name="Inkwell Books", category="books")
    b = create_active_merchant(ctx, name="Tea House", category="restaurant")
    _sale(ctx, a, 4_990, 1)
    _sale(ctx, a, 1_000, 2)
    _sale(ctx, b, 700, 3)
    early = client.get("/v1/merchant/bills/2026-01-01",
                       auth=MerchantAuth(a.key_id, a.secret, clock=ctx.clock))
    assert early.status_code == 409 and early.json()["code"] == "bill_date_not_over"
    ctx.clock.advance(days=1)  # type: ignore[attr-defined]
    got = client.get("/v1/merchant/bills/2026-01-01",
                     auth=MerchantAuth(a.key_id, a.secret, clock=ctx.clock))
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(got.text)))
    body = [r for r in rows if not r[0].startswith("#") and r[0] != "time"]
    assert [r[7] for r in body] == ["49.90", "10.00"]
    assert rows[-2] == ["#summary", "sales", "2", "59.90", "refunds", "0", "0.00", "net",
                        "59.90"]
    theirs = client.get("/v1/merchant/bills/2026-01-01",
                        auth=MerchantAuth(b.key_id, b.secret, clock=ctx.clock))
    assert "49.90" not in theirs.text and "7.00" in theirs.text
    # b cannot ask as a: a's key id with b's secret is refused.
    forged = client.get("/v1/merchant/bills/2026-01-01",
                        auth=MerchantAuth(a.key_id, b.secret, clock=ctx.clock))
    assert forged.status_code == 401
    bad = client.get("/v1/merchant/bills/2026-1-1",
                     auth=MerchantAuth(a.key_id, a.secret, clock=ctx.clock))
    assert bad.status_code == 422 and bad.json()["code"] == "bill_date_invalid"
