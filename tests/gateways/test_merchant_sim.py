"""The demo merchant mounted at /sim/merchant: it checks each notification's Standard
Webhooks signature, answers ``success`` (or fails the first attempts when told to), and
lists what it received. Alone through a TestClient, then inside ``paycell serve`` on a real
port with the delivery worker posting to it."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from paycell.api.app import create_app
from paycell.clock import ManualClock
from paycell.config import Settings
from paycell.context import Context, build_context
from paycell.demo_payments import point_at_simulator
from paycell.gateways.merchant_sim import MerchantSimulator
from paycell.gateways.simkit import SimServer
from paycell.gateways.simulators import merchant_notify_url
from paycell.merchants.demo import seed_demo
from paycell.notifications import signing
from paycell.notifications.delivery import deliver_due
from paycell.notifications.service import enqueue
from paycell.notifications.tables import notifications

SECRET = b"s" * 32
OLD_SECRET = b"o" * 32


def _signed(msg_id: str, ts: int, data: dict[str, object],
            secrets: tuple[bytes, ...] = (SECRET,)) -> tuple[dict[str, str], bytes]:
    body = json.dumps({"id": msg_id, "event": "payment.paid",
                       "created_at": "2026-01-01T00:00:00Z", "data": data}).encode()
    return {"content-type": "application/json", "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": signing.signature_header(secrets, msg_id, ts, body)}, body


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim(clock: ManualClock) -> MerchantSimulator:
    known = {"M100001": [SECRET, OLD_SECRET]}
    return MerchantSimulator(known.get, clock=clock)


def test_verifies_acknowledges_and_lists(sim: MerchantSimulator, clock: ManualClock) -> None:
    now = clock.now_us() // 1_000_000
    http = TestClient(sim.app())
    headers, body = _signed("ntf_1", now, {"trade_no": "P1", "out_trade_no": "HC-1",
                                           "state": "paid", "amount_fen": 3200})
    r = http.post("/notify/M100001", content=body, headers=headers)
    assert (r.status_code, r.text) == (200, "success")
    # signed with the rotated-away secret only: still one of the merchant's
    headers, body = _signed("ntf_2", now, {}, secrets=(OLD_SECRET,))
    assert http.post("/notify/m100001", content=body, headers=headers).text == "success"
    stale_headers, stale_body = _signed("ntf_3", now - 600, {})
    refused = {
        "webhook_signature_mismatch": ("M100001", body + b" ", headers),
        "webhook_timestamp_out_of_range": ("M100001", stale_body, stale_headers),
        "webhook_header_missing": ("M100001", body, {"webhook-id": "ntf_4"}),
        "unknown_merchant": ("M999999", body, headers),
    }
    for code, (merchant, raw, hdrs) in refused.items():
        r = http.post(f"/notify/{merchant}", content=raw, headers=hdrs)
        assert (r.status_code, r.text) == (401, f"fail: {code}")
    listed = http.get("/received").json()
    assert (listed["count"], listed["verified"]) == (6, 2)
    newest_first = [(i["webhook_id"], i["verified"], i["error"]) for i in listed["items"]]
    assert newest_first[-2:] == [("ntf_2", True, None), ("ntf_1", True, None)]
    assert [e for _, _, e in newest_first[:4]] == [*reversed(refused)]
    first = listed["items"][-1]
    assert (first["trade_no"], first["state"], first["amount_fen"], first["answered"]) == (
        "P1", "paid", 3200, 200)
    assert http.get("/received", params={"merchant": "M999999"}).json()["count"] == 1
    page = http.get("/")
    assert page.status_code == 200 and "HC-1" in page.text and "unknown_merchant" in page.text


def test_failing_the_first_attempts_shows_the_retries(sim: MerchantSimulator,
                                                      clock: ManualClock) -> None:
    http = TestClient(sim.app())
    assert http.put("/_sim/config", json={"fail_first": 2}).json() == {"fail_first": 2}
    answers = []
    for _ in range(3):
        headers, body = _signed("ntf_r", clock.now_us() // 1_000_000, {})
        answers.append(http.post("/notify/M100001", content=body, headers=headers).status_code)
        clock.advance(15)
    assert answers == [500, 500, 200]
    assert [(r.attempt, r.verified) for r in reversed(sim.listing())] == [
        (1, True), (2, True), (3, True)]
    assert http.put("/_sim/config", json={"fail_first": -1}).status_code == 422


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(db_url: str, engine: Engine,
           clock: ManualClock) -> Iterator[tuple[Context, MerchantSimulator]]:
    port = _free_port()
    settings = Settings(_env_file=None, database_url=db_url, port=port, run_workers=False,
                        notify_schedule="15s,3m")
    app = create_app(settings, engine=engine, clock=clock)
    server = SimServer(app, port=port, lifespan="on").start()
    try:
        yield build_context(engine, settings=settings, clock=clock), app.state.merchant_sim
    finally:
        server.stop()


def test_serve_mounts_the_demo_merchant_and_the_worker_delivers_to_it(
        served: tuple[Context, MerchantSimulator], clock: ManualClock, engine: Engine) -> None:
    ctx, sim = served
    merchant = point_at_simulator(ctx, seed_demo(ctx)[0].merchant, "test")
    url = merchant_notify_url(ctx.settings, merchant.code)
    assert merchant.default_notify_url == url and url.endswith("/sim/merchant/notify/M100001")
    sim.fail_first = 1
    with engine.begin() as conn:
        nid = enqueue(conn, merchant_id=merchant.id, event="payment.paid",
                      payload={"trade_no": "P1", "state": "paid"}, url=url,
                      now_us=clock.now_us())
    assert deliver_due(ctx) == 1  # answered 500: retried 15 s later
    clock.advance(15)
    assert deliver_due(ctx) == 1
    with engine.connect() as conn:
        row = conn.execute(select(notifications).where(notifications.c.id == nid)).one()
    assert (row.state, row.attempts) == ("delivered", 2)
    got = [(r.webhook_id, r.attempt, r.verified, r.answered) for r in reversed(sim.listing())]
    assert got == [(nid, 1, True, 500), (nid, 2, True, 200)]
    page = httpx.get(url.rsplit("/notify/", 1)[0] + "/", timeout=10, trust_env=False)
    assert page.status_code == 200 and nid in page.text
