"""Guaranteed payment (担保支付): hold, receipt, auto-release, refunds while held, disputes
decided by one operator and approved by another."""

from __future__ import annotations

from typing import Any

import pytest
from payment_helpers import (  # type: ignore[import-not-found]
    PIN,
    balance,
    create,
    fund,
    idem,
    order_body,
    signed,
    wallet,
)

from paycell.operators import approvals
from paycell.operators.service import create_operator, root_operator
from paycell.payments import escrow, jobs


def _held(client: Any, ctx: Any, shop: Any, amount: int = 8000) -> tuple[Any, dict, str]:
    buyer, auth = wallet(ctx)
    fund(ctx, buyer, 20_000)
    trade_no = create(client, ctx, shop, order_body(
        buyer.msisdn, kind="escrow", amount_fen=amount)).json()["trade_no"]
    r = client.post(f"/v1/wallet/payments/{trade_no}/confirm", json={"pin": PIN}, headers=auth)
    assert r.status_code == 200 and r.json()["state"] == "held", r.text
    return buyer, auth, trade_no


def _available(ctx: Any, account_id: int) -> int:
    return ctx.ledger.account(account_id).available


def test_receipt_releases_the_hold(client, ctx, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, auth, trade_no = _held(client, ctx, shop)
    payable = shop.merchant.payable_account_id
    assert _available(ctx, buyer.wallet_account_id) == 12_000
    assert balance(ctx, payable) == 0  # held, not yet the merchant's
    order = client.get(f"/v1/wallet/payments/{trade_no}", headers=auth).json()["order"]
    assert order["release_at"] is not None
    r = client.post(f"/v1/wallet/payments/{trade_no}/receipt", json={"pin": PIN}, headers=auth)
    assert r.status_code == 200 and r.json()["state"] == "released"
    again = client.post(f"/v1/wallet/payments/{trade_no}/receipt", json={"pin": PIN},
                        headers=auth)
    assert again.status_code == 200 and again.json()["state"] == "released"
    assert balance(ctx, payable) == 8000 and balance(ctx, buyer.wallet_account_id) == 12_000


def test_auto_release_after_the_configured_days(client, ctx, clock, shop) -> None:  # type: ignore[no-untyped-def]
    _, _, trade_no = _held(client, ctx, shop)
    clock.advance(days=ctx.settings.escrow_auto_release_days, seconds=-1)
    assert jobs.run_payment_jobs(ctx) == 0
    clock.advance(seconds=1)
    assert jobs.run_payment_jobs(ctx) == 1
    assert jobs.run_payment_jobs(ctx) == 0
    order = client.get(f"/v1/payments/{trade_no}", auth=signed(ctx, shop)).json()
    assert order["order"]["state"] == "released"
    assert order["events"][-1]["actor"] == "system"
    assert balance(ctx, shop.merchant.payable_account_id) == 8000


def test_refund_while_held_is_whole_or_nothing(client, ctx, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, _, trade_no = _held(client, ctx, shop)
    url = f"/v1/payments/{trade_no}/refunds"
    part = client.post(url, json={"out_request_no": "R1", "amount_fen": 100},
                       auth=signed(ctx, shop))
    assert part.status_code == 409 and part.json()["code"] == "escrow_partial_refund"
    whole = client.post(url, json={"out_request_no": "R2", "amount_fen": 8000},
                        auth=signed(ctx, shop))
    assert whole.status_code == 200 and whole.json()["order"]["state"] == "refunded"
    assert balance(ctx, buyer.wallet_account_id) == 20_000
    assert _available(ctx, buyer.wallet_account_id) == 20_000
    hold = ctx.ledger.hold(f"pay:{trade_no}")
    assert hold is not None and hold.status == "voided"


def test_dispute_freezes_until_two_operators_decide(client, ctx, clock, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, auth, trade_no = _held(client, ctx, shop)
    r = client.post(f"/v1/wallet/payments/{trade_no}/dispute",
                    json={"reason": "the second book never came"}, headers=auth)
    assert r.status_code == 201 and r.json()["state"] == "open"
    dispute_id = r.json()["id"]
    clock.advance(days=ctx.settings.escrow_auto_release_days + 1)
    assert jobs.run_payment_jobs(ctx) == 0  # frozen: no auto-release
    receipt = client.post(f"/v1/wallet/payments/{trade_no}/receipt", json={"pin": PIN},
                          headers=auth)
    assert receipt.status_code == 409

    maker = root_operator(ctx)
    bad = escrow.propose_resolution
    with pytest.raises(Exception) as err:
        bad(ctx, maker, dispute_id, "split", 8000)
    assert getattr(err.value, "code", "") == "dispute_split_invalid"
    approval = escrow.propose_resolution(ctx, maker, dispute_id, "split", 3000)
    with pytest.raises(approvals.ApprovalSameOperatorError):
        approvals.approve(ctx, maker, approval.id)
    checker, _ = create_operator(ctx, "checker-1", "operator")
    done = approvals.approve(ctx, checker, approval.id)
    assert done.state == "approved" and done.result["state"] == "partially_refunded"
    assert balance(ctx, buyer.wallet_account_id) == 12_000 + 3000
    assert balance(ctx, shop.merchant.payable_account_id) == 5000
    d = escrow.get_dispute(ctx, dispute_id)
    assert (d.state, d.outcome, d.buyer_fen, d.merchant_fen) == ("resolved", "split", 3000, 5000)
    assert (d.decided_by, d.approved_by) == (maker.name, "checker-1")
    order = client.get(f"/v1/payments/{trade_no}", auth=signed(ctx, shop)).json()
    assert order["order"]["refunded_fen"] == 3000
    assert [x["source"] for x in order["refunds"]] == ["dispute"]


def test_dispute_through_the_operator_api(client, ctx, shop) -> None:  # type: ignore[no-untyped-def]
    from payment_helpers import OPERATOR  # type: ignore[import-not-found]

    buyer, auth, trade_no = _held(client, ctx, shop)
    dispute_id = client.post(f"/v1/wallet/payments/{trade_no}/dispute",
                             json={"reason": "arrived broken"}, headers=auth).json()["id"]
    listed = client.get("/v1/operator/disputes", headers=OPERATOR).json()["items"]
    assert [d["trade_no"] for d in listed] == [trade_no]
    r = client.post(f"/v1/operator/disputes/{dispute_id}/resolution",
                    json={"outcome": "refund"}, headers=OPERATOR)
    assert r.status_code == 202, r.text
    assert r.json()["payload"]["buyer_fen"] == 8000
    same = client.post(f"/v1/approvals/{r.json()['approval_id']}/approve",
                       headers=idem(**OPERATOR))
    assert same.status_code == 403 and same.json()["code"] == "approval_same_operator"
    _, key = create_operator(ctx, "checker-2", "operator")
    ok = client.post(f"/v1/approvals/{r.json()['approval_id']}/approve",
                     headers=idem(**{"X-API-Key": key}))
    assert ok.status_code == 200, ok.text
    assert balance(ctx, buyer.wallet_account_id) == 20_000
    order = client.get(f"/v1/wallet/payments/{trade_no}", headers=auth).json()["order"]
    assert order["state"] == "refunded"


def test_only_the_buyer_can_dispute_or_confirm(client, ctx, shop) -> None:  # type: ignore[no-untyped-def]
    _, _, trade_no = _held(client, ctx, shop)
    _, stranger = wallet(ctx)
    for path, body in (("receipt", {"pin": PIN}), ("dispute", {"reason": "not mine at all"})):
        r = client.post(f"/v1/wallet/payments/{trade_no}/{path}", json=body, headers=stranger)
        assert r.status_code == 404
