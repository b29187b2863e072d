"""PIN reset by SMS, KYC upgrade, operator freeze, close (销户) and number recycling."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from wallets import PIN, bearer, fund, key, login, merchant, pay, signup

from paycell.clock import ManualClock
from paycell.context import Context
from paycell.gateways.sms import RecordingSms
from paycell.ledger import TransferFlags, TransferRequest
from paycell.ledger.chart import Code, system_account
from paycell.subscribers.errors import SubscriberFrozenError
from paycell.subscribers.service import get_subscriber

A, B = "+8613800138000", "+8613900139000"
NEW_PIN = "590213"


def _code(ctx: Context, msisdn: str) -> str:
    assert isinstance(ctx.sms, RecordingSms)
    text = ctx.sms.last_to(msisdn)
    assert text is not None
    found = re.search(r"\b(\d{6})\b", text)
    assert found
    return found.group(1)


def _reset(client: TestClient, msisdn: str, code: str, pin: str = NEW_PIN) -> tuple[int, dict]:
    r = client.post("/v1/wallet/pin/reset/confirm",
                    json={"msisdn": msisdn, "code": code, "new_pin": pin}, headers=key())
    return r.status_code, r.json()


def test_pin_reset_by_sms_unlocks_and_ends_sessions(client: TestClient, ctx: Context) -> None:
    signup(client, A)
    tokens = login(client, A)
    for _ in range(5):
        client.post("/v1/wallet/login", json={"msisdn": A, "pin": "862514"}, headers=key())
    r = client.post("/v1/wallet/login", json={"msisdn": A, "pin": PIN}, headers=key())
    assert r.json()["code"] == "pin_locked"
    r = client.post("/v1/wallet/pin/reset", json={"msisdn": B}, headers=key())
    assert r.status_code == 202  # no wallet: the same answer, and no text
    assert isinstance(ctx.sms, RecordingSms) and ctx.sms.messages(B) == []
    k = key()
    first = client.post("/v1/wallet/pin/reset", json={"msisdn": A}, headers=k)
    again = client.post("/v1/wallet/pin/reset", json={"msisdn": A}, headers=k)
    assert first.status_code == again.status_code == 202 and first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(ctx.sms.messages(A)) == 1
    code = _code(ctx, A)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    status, body = _reset(client, A, wrong)
    assert (status, body["code"], body["remaining_tries"]) == (422, "code_invalid", 2)
    assert _reset(client, A, code, "123456")[1]["code"] == "pin_trivial"
    status, body = _reset(client, A, code)
    assert status == 200 and body["status"] == "pin_reset"
    assert client.get("/v1/wallet", headers=bearer(tokens)).status_code == 401
    login(client, A, NEW_PIN)  # the lock is gone too
    assert _reset(client, A, code, "863102")[1]["code"] == "code_invalid"  # used


def test_reset_codes_expire_and_allow_three_tries(
        client: TestClient, ctx: Context, clock: ManualClock) -> None:
    signup(client, A)
    client.post("/v1/wallet/pin/reset", json={"msisdn": A}, headers=key())
    code = _code(ctx, A)
    clock.advance(minutes=5)
    assert _reset(client, A, code)[1]["code"] == "code_invalid"
    client.post("/v1/wallet/pin/reset", json={"msisdn": A}, headers=key())
    code = _code(ctx, A)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    assert [_reset(client, A, wrong)[1]["remaining_tries"] for _ in range(3)] == [2, 1, 0]
    assert _reset(client, A, code)[1]["code"] == "code_invalid"
    assert _reset(client, B, code)[1]["code"] == "code_invalid"  # no wallet: same answer
    login(client, A)  # the PIN did not change


def test_kyc_upgrade_raises_the_limits(client: TestClient) -> None:
    signup(client, A)
    t = login(client, A)
    body = {"name": "Han Meimei", "id_number": "11010519491231002x"}
    r = client.post("/v1/wallet/kyc", json=body, headers=bearer(t, **key()))
    assert r.status_code == 200 and r.json()["tier"] == 1 and r.json()["name"] == "Han Meimei"
    assert client.get("/v1/wallet", headers=bearer(t)).json()["limits"] == {
        "balance_cap_fen": 1_000_000, "per_transaction_fen": 500_000,
        "daily_fen": 1_000_000, "monthly_fen": 2_000_000}
    r = client.post("/v1/wallet/kyc", json=body, headers=bearer(t, **key()))
    assert r.status_code == 200  # the same document again
    r = client.post("/v1/wallet/kyc", json={"name": "X", "id_number": "E12345678"},
                    headers=bearer(t, **key()))
    assert r.status_code == 422 and r.json()["code"] == "id_number_invalid"


def test_operators_freeze_and_unfreeze_with_a_reason(
        client: TestClient, ctx: Context, operator: dict[str, str]) -> None:
    sid = signup(client, A)["id"]
    t = login(client, A)
    url = f"/v1/operator/subscribers/{sid}"
    assert client.post(f"{url}/freeze", json={"reason": "x"}, headers=key()).status_code == 401
    r = client.post(f"{url}/freeze", json={"reason": "x"}, headers=bearer(t, **key()))
    assert r.status_code == 401  # a subscriber is no operator
    r = client.post(f"{url}/freeze", json={}, headers={**operator, **key()})
    assert r.status_code == 422
    k = {**operator, **key()}
    r = client.post(f"{url}/freeze", json={"reason": "fraud report #12"}, headers=k)
    assert r.status_code == 200 and r.json()["state"] == "frozen"
    again = client.post(f"{url}/freeze", json={"reason": "fraud report #12"}, headers=k)
    assert again.headers["Idempotent-Replayed"] == "true"
    r = client.post(f"{url}/freeze", json={"reason": "twice"}, headers={**operator, **key()})
    assert r.status_code == 409 and r.json()["code"] == "subscriber_state_invalid"
    sub = get_subscriber(ctx, sid)
    fund(ctx, sub, 5_000)
    with pytest.raises(SubscriberFrozenError):
        pay(ctx, sub, 1_000)
    other = get_subscriber(ctx, signup(client, B)["id"])
    fund(ctx, other, 5_000)
    pay(ctx, other, 2_000, to_sub=sub)  # a frozen wallet still receives
    r = client.post("/v1/wallet/close", json={"pin": PIN}, headers=bearer(t, **key()))
    assert r.status_code == 409 and r.json()["code"] == "subscriber_frozen"
    r = client.post(f"{url}/unfreeze", json={"reason": "cleared"},
                    headers={**operator, **key()})
    assert r.json()["state"] == "active"
    pay(ctx, sub, 1_000)
    shown = client.get(url, headers=operator).json()
    assert shown["balance_fen"] == 6_000
    assert [(e["kind"], e["reason"]) for e in shown["events"]] == [
        ("unfrozen", "cleared"), ("frozen", "fraud report #12"), ("opened", "tier 0")]
    assert client.get("/v1/operator/subscribers/999", headers=operator).status_code == 404


def test_close_is_refused_while_a_hold_is_pending(client: TestClient, ctx: Context) -> None:
    sub = get_subscriber(ctx, signup(client, A)["id"])
    t = login(client, A)
    fund(ctx, sub, 10_000)
    hold = pay(ctx, sub, 2_000, hold=True)
    r = client.post("/v1/wallet/close", json={"pin": PIN}, headers=bearer(t, **key()))
    assert r.status_code == 409 and r.json()["code"] == "account_has_pending_holds"
    ctx.ledger.post_one(TransferRequest(f"{hold}:void", flags=TransferFlags.VOID_PENDING,
                                        pending_id=hold, ledger=None))
    r = client.post("/v1/wallet/close", json={"pin": "862514"}, headers=bearer(t, **key()))
    assert r.status_code == 403 and r.json()["code"] == "pin_invalid"
    assert get_subscriber(ctx, sub.id).state == "active"


def test_close_holds_the_balance_for_collection_and_the_number_is_recycled(
        client: TestClient, ctx: Context, operator: dict[str, str]) -> None:
    old = get_subscriber(ctx, signup(client, A)["id"])
    t_old = login(client, A)
    fund(ctx, old, 10_000)
    pay(ctx, old, 1_500, to=merchant(ctx))
    k = bearer(t_old, **key())
    r = client.post("/v1/wallet/close", json={"pin": PIN}, headers=k)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "closed" and body["balance_fen"] == 8_500
    assert (body["paid_to"], body["reference"]) == ("unclaimed", f"close:{old.id}")
    assert system_account(ctx.ledger, Code.UNCLAIMED).balance == 8_500
    wallet = ctx.ledger.account(old.wallet_account_id)
    assert wallet.closed and wallet.balance == 0
    assert client.get("/v1/wallet", headers=bearer(t_old)).status_code == 401
    r = client.post("/v1/wallet/login", json={"msisdn": A, "pin": PIN}, headers=key())
    assert r.status_code == 401 and r.json()["code"] == "credentials_invalid"
    # A new owner of the number sees nothing of the old wallet.
    new = signup(client, A, "862514")
    assert new["id"] != old.id
    t_new = login(client, A, "862514")
    assert client.get("/v1/wallet", headers=bearer(t_new)).json()["balance_fen"] == 0
    r = client.get("/v1/wallet/statement", headers=bearer(t_new))
    assert r.json() == {"items": [], "next_cursor": None}
    assert client.get("/v1/wallet", headers=bearer(t_old)).status_code == 401
    found = client.get("/v1/operator/subscribers", params={"msisdn": "13800138000"},
                       headers=operator).json()["items"]
    assert [(s["id"], s["state"]) for s in found] == [(new["id"], "active"),
                                                      (old.id, "closed")]
    assert found[1]["closed_at"] is not None
