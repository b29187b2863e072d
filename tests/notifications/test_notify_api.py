"""The notification routes on both databases: operators list, show and re-send (with an
Idempotency-Key); merchants see their own only, signed as themselves."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from notify_helpers import (  # type: ignore[import-not-found]
    API_KEY,
    Answer,
    MerchantServer,
    clock,
    make_settings,
    merchant_server,
    notify,
)
from sqlalchemy import Engine

from paycell.api.app import create_app
from paycell.clock import ManualClock
from paycell.context import Context
from paycell.merchants.model import OnboardedMerchant
from paycell.merchants.service import create_active_merchant, webhook_secrets
from paycell.merchants.signing import MerchantAuth
from paycell.notifications import delivery
from paycell.operators.service import create_operator

__all__ = ["clock", "merchant_server"]
OPERATOR = {"X-API-Key": API_KEY}


@pytest.fixture
def client(engine: Engine, db_url: str, clock: ManualClock) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(db_url), engine=engine, clock=clock)) as c:
        yield c


@pytest.fixture
def ctx(client: TestClient) -> Context:
    c: Context = client.app.state.ctx  # type: ignore[attr-defined]
    return c


def shop(ctx: Context, name: str, server: MerchantServer | None = None) -> OnboardedMerchant:
    m = create_active_merchant(ctx, name=name, category="retail")
    if server is not None:
        server.secrets = webhook_secrets(ctx, m.merchant.id)
    return m


def as_merchant(ctx: Context, m: OnboardedMerchant) -> MerchantAuth:
    return MerchantAuth(m.key_id, m.secret, clock=ctx.clock)


def idem() -> dict[str, str]:
    return {**OPERATOR, "Idempotency-Key": str(uuid.uuid4())}


def test_operator_lists_filters_and_pages(client: TestClient, ctx: Context,
                                          merchant_server: MerchantServer) -> None:
    a, b = shop(ctx, "Alpha", merchant_server), shop(ctx, "Beta")
    ids_a = [notify(ctx, a.merchant.id, merchant_server.url, data={"n": i}) for i in range(3)]
    id_b = notify(ctx, b.merchant.id, "http://127.0.0.1:9/nobody")
    assert client.get("/v1/notifications").status_code == 401

    body = client.get("/v1/notifications", headers=OPERATOR).json()
    assert [n["id"] for n in body["items"]] == [id_b, *reversed(ids_a)]
    assert body["next_cursor"] is None
    first = body["items"][1]
    assert first["state"] == "pending" and first["attempts"] == 0
    assert first["data"] == {"n": 2} and first["event"] == "payment.succeeded"

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"merchant_id": a.merchant.id, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/notifications", params=params, headers=OPERATOR).json()
        seen += [n["id"] for n in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids_a))

    delivery.deliver_due(ctx)
    delivered = client.get("/v1/notifications", params={"state": "delivered"},
                           headers=OPERATOR).json()["items"]
    assert sorted(n["id"] for n in delivered) == sorted(ids_a)
    pending = client.get("/v1/notifications", params={"state": "pending"},
                         headers=OPERATOR).json()["items"]
    assert [n["id"] for n in pending] == [id_b]

    bad = client.get("/v1/notifications", params={"cursor": "nonsense"}, headers=OPERATOR)
    assert (bad.status_code, bad.json()["code"]) == (422, "cursor_invalid")
    bad = client.get("/v1/notifications", params={"state": "lost"}, headers=OPERATOR)
    assert (bad.status_code, bad.json()["code"]) == (422, "validation_error")


def test_operator_shows_and_resends(client: TestClient, ctx: Context, clock: ManualClock,
                                    merchant_server: MerchantServer) -> None:
    m = shop(ctx, "Alpha", merchant_server)
    merchant_server.script = [Answer(500, "try later")]
    nid = notify(ctx, m.merchant.id, merchant_server.url)
    delivery.deliver_due(ctx)
    shown = client.get(f"/v1/notifications/{nid}", headers=OPERATOR).json()
    assert shown["state"] == "pending" and shown["attempts"] == 1
    assert shown["attempt_log"][0] | {"latency_ms": 0} == {
        "attempted_at": "2026-01-01T00:00:00Z", "status_code": 500, "error": "http_status",
        "acknowledged": False, "latency_ms": 0, "response_snippet": "try later",
        "manual": False, "operator": None}
    missing = client.get("/v1/notifications/ntf_unknown", headers=OPERATOR)
    assert (missing.status_code, missing.json()["code"]) == (404, "notification_not_found")

    no_key = client.post(f"/v1/notifications/{nid}/resend", headers=OPERATOR)
    assert (no_key.status_code, no_key.json()["code"]) == (422, "idempotency_key_required")
    headers = idem()
    clock.advance(seconds=3)
    r = client.post(f"/v1/notifications/{nid}/resend", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "delivered"
    assert r.json()["delivered_at"] == "2026-01-01T00:00:03Z"
    last = r.json()["attempt_log"][-1]
    assert (last["manual"], last["operator"], last["acknowledged"]) == (True, "root", True)
    again = client.post(f"/v1/notifications/{nid}/resend", headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == r.json()
    assert len(merchant_server.received) == 2  # the replay sent nothing
    assert all(x.error is None for x in merchant_server.received)
    gone = client.post("/v1/notifications/ntf_unknown/resend", headers=idem())
    assert gone.status_code == 404

    _, auditor_key = create_operator(ctx, "audrey", "auditor")
    refused = client.post(f"/v1/notifications/{nid}/resend",
                          headers={"X-API-Key": auditor_key,
                                   "Idempotency-Key": str(uuid.uuid4())})
    assert (refused.status_code, refused.json()["code"]) == (403, "operator_role_forbidden")
    assert client.get(f"/v1/notifications/{nid}",
                      headers={"X-API-Key": auditor_key}).status_code == 200


def test_merchants_see_their_own_only(client: TestClient, ctx: Context,
                                      merchant_server: MerchantServer) -> None:
    a, b = shop(ctx, "Alpha", merchant_server), shop(ctx, "Beta")
    mine = notify(ctx, a.merchant.id, merchant_server.url)
    theirs = notify(ctx, b.merchant.id, "http://127.0.0.1:9/nobody")
    merchant_server.script = [Answer(500)]
    delivery.deliver_due(ctx)
    assert client.get("/v1/merchant/notifications").status_code == 401

    page = client.get("/v1/merchant/notifications", auth=as_merchant(ctx, a)).json()
    assert [n["id"] for n in page["items"]] == [mine]
    assert page["items"][0]["merchant_id"] == a.merchant.id
    shown = client.get(f"/v1/merchant/notifications/{mine}", auth=as_merchant(ctx, a))
    assert shown.status_code == 200 and shown.json()["attempt_log"][0]["status_code"] == 500
    other = client.get(f"/v1/merchant/notifications/{theirs}", auth=as_merchant(ctx, a))
    assert (other.status_code, other.json()["code"]) == (404, "notification_not_found")
    assert [n["id"] for n in client.get(
        "/v1/merchant/notifications", params={"state": "pending"},
        auth=as_merchant(ctx, b)).json()["items"]] == [theirs]

    # A manual re-send shows the merchant it was manual, not who did it.
    client.post(f"/v1/notifications/{mine}/resend", headers=idem())
    log = client.get(f"/v1/merchant/notifications/{mine}",
                     auth=as_merchant(ctx, a)).json()["attempt_log"]
    assert [(x["manual"], x["operator"]) for x in log] == [(False, None), (True, None)]
