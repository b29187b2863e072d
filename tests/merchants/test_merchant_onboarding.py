"""Merchant onboarding over HTTP, on both databases: application, review, maker-checker
activation (the proposer cannot approve), the payable account, rejection, suspension,
termination; bad input refused with stable codes and nothing written; webhook secrets and
their rotation overlap; the lifecycle as a state machine (hypothesis)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from merchant_helpers import (  # type: ignore[import-not-found]
    OPERATOR,
    active_merchant,
    client,
    clock,
    ctx,
    idem,
    settings,
    signed,
)
from sqlalchemy import func, select

from paycell.clock import ManualClock
from paycell.context import Context
from paycell.errors import PaycellError
from paycell.ledger.chart import Code
from paycell.merchants import rules
from paycell.merchants.demo import seed_demo
from paycell.merchants.service import find_by_code, get_merchant, webhook_secrets
from paycell.merchants.tables import merchants

__all__ = ["client", "clock", "ctx", "settings"]  # fixtures, imported for pytest
APPLICATION = {
    "name": "Harbour Coffee", "company": "Harbour Coffee (Shenzhen) Co., Ltd.",
    "category": "food_beverage", "contact_name": "Wang Fang",
    "contact_phone": "+8613800138000", "contact_email": "ops@harbour.example",
    "bank_name": "Bank of Example", "bank_account_holder": "Harbour Coffee Co., Ltd.",
    "bank_account_number": "6222 0202 0011 2233", "notify_url": "https://harbour.example/n"}


def second_operator(client: TestClient, name: str = "bob") -> dict[str, str]:
    r = client.post("/v1/operators", json={"name": name, "role": "operator"},
                    headers=idem(**OPERATOR))
    assert r.status_code == 201, r.text
    return {"X-API-Key": r.json()["api_key"]}


def post(client: TestClient, path: str, body: Any, who: dict[str, str]) -> Any:
    return client.post(path, json=body, headers=idem(**who))


def count_merchants(ctx: Context) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(merchants)).scalar_one())


def test_onboarding_end_to_end_with_a_second_operator(client: TestClient,
                                                      ctx: Context) -> None:
    bob = second_operator(client)
    r = post(client, "/v1/merchants", APPLICATION, OPERATOR)
    assert r.status_code == 201, r.text
    m = r.json()
    assert m["state"] == "applied" and m["code"] == f"M{100_000 + m['id']}"
    assert m["payable_account_id"] is None
    mid = m["id"]
    assert post(client, f"/v1/merchants/{mid}/review", {"note": "KYB ok"},
                OPERATOR).json()["state"] == "in_review"
    r = post(client, f"/v1/merchants/{mid}/approval", {"reason": "documents fine"}, OPERATOR)
    assert r.status_code == 201, r.text
    approval = r.json()
    assert approval["state"] == "pending" and approval["proposed_by"] == "root"
    # maker-checker: root proposed, root cannot approve; nothing changes
    r = post(client, f"/v1/approvals/{approval['id']}/approve", {}, OPERATOR)
    assert r.status_code == 403 and r.json()["code"] == "approval_same_operator"
    assert get_merchant(ctx, mid).state == "in_review"
    r = post(client, f"/v1/approvals/{approval['id']}/approve", {}, bob)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "approved" and r.json()["decided_by"] == "bob"
    merchant = get_merchant(ctx, mid)
    assert merchant.state == "active" and merchant.payable_account_id is not None
    acct = ctx.ledger.account(merchant.payable_account_id)
    assert acct.code == Code.MERCHANT_PAYABLE and acct.balance == 0
    assert r.json()["result"]["payable_account_id"] == merchant.payable_account_id
    assert len(webhook_secrets(ctx, mid)) == 1
    # the first key, then the merchant signs in with it
    r = post(client, f"/v1/merchants/{mid}/credentials", {"label": "first"}, bob)
    assert r.status_code == 201 and r.json()["secret"].startswith("msk_")
    detail = client.get(f"/v1/merchants/{mid}", headers=OPERATOR).json()
    assert detail["application"]["bank_account_masked"] == "****2233"
    assert "6222" not in str(detail)
    assert [e["kind"] for e in detail["events"]] == [
        "applied", "review", "activated", "credential_issued"]
    assert detail["events"][2]["actor"] == "bob"
    assert find_by_code(ctx, f" m{100_000 + mid} ") == merchant
    assert find_by_code(ctx, "M999999") is None and find_by_code(ctx, "PAY") is None


def test_an_application_is_idempotent(client: TestClient, ctx: Context) -> None:
    h = idem(**OPERATOR)
    r1 = client.post("/v1/merchants", json=APPLICATION, headers=h)
    r2 = client.post("/v1/merchants", json=APPLICATION, headers=h)
    assert r1.json() == r2.json() and r2.headers["idempotent-replayed"] == "true"
    r3 = client.post("/v1/merchants", json={**APPLICATION, "name": "Other"}, headers=h)
    assert r3.status_code == 422 and r3.json()["code"] == "idempotency_key_reused"
    assert count_merchants(ctx) == 1


@pytest.mark.parametrize(("field", "value", "code"), [
    ("category", "Food & Drink", "merchant_invalid"),
    ("contact_email", "not-an-email", "merchant_invalid"),
    ("contact_phone", "call me", "merchant_invalid"),
    ("bank_account_number", "12ab5678", "merchant_invalid"),
    ("notify_url", "ftp://x.example/n", "merchant_invalid"),
    ("name", "   ", "merchant_invalid"),
    ("name", "x" * 101, "validation_error"),
    ("unexpected", "field", "validation_error"),
])
def test_bad_applications_are_refused_and_write_nothing(client: TestClient, ctx: Context,
                                                        field: str, value: str,
                                                        code: str) -> None:
    r = post(client, "/v1/merchants", {**APPLICATION, field: value}, OPERATOR)
    assert r.status_code == 422 and r.json()["code"] == code, r.text
    if code == "merchant_invalid":
        assert r.json()["field"] == field
    assert count_merchants(ctx) == 0


def test_transitions_out_of_order_are_409(client: TestClient, ctx: Context) -> None:
    bob = second_operator(client)
    mid = post(client, "/v1/merchants", APPLICATION, OPERATOR).json()["id"]
    r = post(client, f"/v1/merchants/{mid}/approval", {"reason": "skip review"}, OPERATOR)
    assert r.status_code == 409 and r.json()["code"] == "merchant_state_invalid"
    r = post(client, f"/v1/merchants/{mid}/suspend", {"reason": "x"}, OPERATOR)
    assert r.status_code == 409 and r.json()["state"] == "applied"
    post(client, f"/v1/merchants/{mid}/review", {}, OPERATOR)
    approval = post(client, f"/v1/merchants/{mid}/approval", {"reason": "ok"}, OPERATOR).json()
    r = post(client, f"/v1/merchants/{mid}/approval", {"reason": "again"}, bob)
    assert r.status_code == 409 and r.json()["code"] == "approval_pending"
    assert r.json()["approval_id"] == approval["id"]
    # rejecting the application rejects the open proposal with it
    r = post(client, f"/v1/merchants/{mid}/reject", {"reason": "fake documents"}, bob)
    assert r.json()["state"] == "rejected"
    assert client.get(f"/v1/approvals/{approval['id']}",
                      headers=OPERATOR).json()["state"] == "rejected"
    r = post(client, f"/v1/approvals/{approval['id']}/approve", {}, bob)
    assert r.status_code == 409 and r.json()["code"] == "approval_not_pending"
    assert get_merchant(ctx, mid).payable_account_id is None
    r = post(client, f"/v1/merchants/{mid}/credentials", {}, bob)
    assert r.status_code == 409 and r.json()["code"] == "merchant_state_invalid"
    r = post(client, "/v1/merchants/424242/review", {}, OPERATOR)
    assert r.status_code == 404 and r.json()["code"] == "merchant_not_found"


def test_termination_needs_a_second_operator(client: TestClient, ctx: Context) -> None:
    bob = second_operator(client)
    m = active_merchant(ctx)
    mid = m.merchant.id
    r = post(client, "/v1/merchants", APPLICATION, OPERATOR)
    applied = r.json()["id"]
    r = post(client, f"/v1/merchants/{applied}/terminate", {"reason": "x"}, OPERATOR)
    assert r.status_code == 409 and r.json()["code"] == "merchant_state_invalid"
    r = post(client, f"/v1/merchants/{mid}/terminate", {"reason": "fraud ring"}, OPERATOR)
    assert r.status_code == 201, r.text
    approval = r.json()
    assert approval["action"] == "merchant_terminate" and approval["state"] == "pending"
    assert get_merchant(ctx, mid).state == "active"  # a proposal changes nothing
    r = post(client, f"/v1/merchants/{mid}/terminate", {"reason": "again"}, bob)
    assert r.status_code == 409 and r.json()["code"] == "approval_pending"
    r = post(client, f"/v1/approvals/{approval['id']}/approve", {}, OPERATOR)
    assert r.status_code == 403 and r.json()["code"] == "approval_same_operator"
    assert get_merchant(ctx, mid).state == "active"
    r = post(client, f"/v1/approvals/{approval['id']}/approve", {}, bob)
    assert r.status_code == 200 and r.json()["state"] == "approved", r.text
    assert r.json()["result"]["state"] == "terminated"
    merchant = get_merchant(ctx, mid)
    assert merchant.state == "terminated"
    assert merchant.payable_account_id is not None  # kept for settlement to pay out
    r = signed(client, m, "GET", "/v1/merchant")
    assert r.status_code == 401 and r.json()["code"] == "key_revoked"


def test_an_auditor_cannot_act(client: TestClient) -> None:
    r = client.post("/v1/operators", json={"name": "audrey", "role": "auditor"},
                    headers=idem(**OPERATOR))
    audrey = {"X-API-Key": r.json()["api_key"]}
    r = post(client, "/v1/merchants", APPLICATION, audrey)
    assert r.status_code == 403 and r.json()["code"] == "operator_role_forbidden"
    assert client.get("/v1/merchants", headers=audrey).json()["items"] == []


def test_list_merchants_pages_and_filters(client: TestClient, ctx: Context) -> None:
    for i in range(3):
        active_merchant(ctx, f"Shop {i}")
    post(client, "/v1/merchants", APPLICATION, OPERATOR)
    page = client.get("/v1/merchants?limit=2", headers=OPERATOR).json()
    assert [m["name"] for m in page["items"]] == ["Harbour Coffee", "Shop 2"]
    rest = client.get(f"/v1/merchants?limit=2&cursor={page['next_cursor']}",
                      headers=OPERATOR).json()
    assert [m["name"] for m in rest["items"]] == ["Shop 1", "Shop 0"]
    active = client.get("/v1/merchants?state=active", headers=OPERATOR).json()["items"]
    assert len(active) == 3
    r = client.get("/v1/merchants?cursor=bogus", headers=OPERATOR)
    assert r.status_code == 422 and r.json()["code"] == "cursor_invalid"


def test_webhook_secret_rotation_keeps_the_old_one_for_the_overlap(
        client: TestClient, ctx: Context, clock: ManualClock, settings: Any) -> None:
    m = active_merchant(ctx)
    first = webhook_secrets(ctx, m.merchant.id)
    assert first == [m.webhook_secret]
    r = signed(client, m, "GET", "/v1/merchant/webhook-secret")
    assert r.json()["secret"].startswith("whsec_") and r.json()["previous_valid"] == 0
    r = signed(client, m, "POST", "/v1/merchant/webhook-secret/rotate")
    assert r.status_code == 200 and r.json()["previous_valid"] == 1
    now = webhook_secrets(ctx, m.merchant.id)
    assert len(now) == 2 and now[1] == m.webhook_secret and now[0] != m.webhook_secret
    clock.advance(seconds=settings.webhook_secret_overlap_s - 1)
    assert len(webhook_secrets(ctx, m.merchant.id)) == 2
    clock.advance(seconds=1)
    assert webhook_secrets(ctx, m.merchant.id) == [now[0]]
    assert webhook_secrets(ctx, 424242) == []


def test_stores_by_operator_and_by_merchant(client: TestClient, ctx: Context) -> None:
    m = active_merchant(ctx)
    r = post(client, f"/v1/merchants/{m.merchant.id}/stores",
             {"code": "SZ-01", "name": "Nanshan", "address": "1 Keyuan Rd"}, OPERATOR)
    assert r.status_code == 201, r.text
    r = signed(client, m, "POST", "/v1/merchant/stores",
               json={"code": "SZ-01", "name": "dup", "address": "x"})
    assert r.status_code == 409 and r.json()["code"] == "store_code_taken"
    r = signed(client, m, "POST", "/v1/merchant/stores",
               json={"code": "bad code!", "name": "x", "address": "x"})
    assert r.status_code == 422 and r.json()["field"] == "code"
    stores = signed(client, m, "GET", "/v1/merchant/stores").json()["items"]
    assert [s["code"] for s in stores] == ["SZ-01"]
    closed = signed(client, m, "POST", f"/v1/merchant/stores/{stores[0]['id']}/close")
    assert closed.json()["state"] == "closed"


def test_seed_demo_makes_three_active_merchants_once(client: TestClient, ctx: Context) -> None:
    first = seed_demo(ctx)
    assert [m.merchant.name for m in first] == [
        "Harbour Coffee", "Inkwell Books Online", "Pearl River Tickets"]
    assert all(m.merchant.state == "active" and m.merchant.payable_account_id for m in first)
    again = seed_demo(ctx)
    assert [(m.merchant.id, m.key_id, m.secret) for m in again] == [
        (m.merchant.id, m.key_id, m.secret) for m in first]
    for m in first:
        assert signed(client, m, "GET", "/v1/merchant").status_code == 200
    assert len(signed(client, first[0], "GET", "/v1/merchant/stores").json()["items"]) == 2


# -- the lifecycle as a state machine ------------------------------------------------------
ACTIONS = sorted(rules.TRANSITIONS)


@given(st.lists(st.sampled_from(ACTIONS), max_size=30))
def test_the_lifecycle_only_moves_along_its_table(actions: list[str]) -> None:
    state, activated = "applied", False
    for action in actions:
        starts, target = rules.TRANSITIONS[action]
        try:
            new = rules.next_state(state, action)
        except PaycellError as exc:
            assert exc.code == "merchant_state_invalid" and state not in starts
            continue
        assert state in starts and new == target
        assert state not in rules.FINAL  # nothing leaves a final state
        activated |= new == "active"
        # a merchant is active or suspended only after an activation
        assert new not in ("active", "suspended") or activated
        state = new
