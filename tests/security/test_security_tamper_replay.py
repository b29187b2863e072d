"""Signed merchant requests and MACed terminal messages that were changed after signing,
replayed, or signed with a clock beyond the window (±``signature_window_s``, 300 s): each a
clear 401 with its stable code, and nothing changed (ledger transfers, payment orders and
refunds counted before and after), on both databases.

The codes one by one, the window's edges and the nonce's lifetime are tested in
tests/merchants/test_merchant_signing.py and tests/onsite/test_terminals.py
(test_terminal_messages_need_the_right_mac); here every attack is aimed at a request that
would move money (a refund, a tap), and its effect is counted.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from cash_helpers import client, clock, ctx, settings  # type: ignore[import-not-found]
from fastapi.testclient import TestClient
from security_world import (  # type: ignore[import-not-found]
    World,
    assert_problem,
    build_world,
    card_sim,
    counts,
)

from paycell.context import Context
from paycell.merchants import signing as s
from paycell.onsite import terminal_auth

__all__ = ["client", "clock", "ctx", "settings"]  # fixtures, imported for pytest


def now_s(ctx: Context) -> int:
    return ctx.clock.now_us() // 1_000_000


@pytest.fixture
def world(client: TestClient, ctx: Context) -> World:
    return build_world(client, ctx)


def _merchant_send(client: TestClient, method: str, target: str, body: bytes,
                   headers: dict[str, str]) -> Any:
    return client.request(method, target, content=body, headers={
        "Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4()), **headers})


def test_tampered_merchant_requests_move_nothing(client: TestClient, ctx: Context,
                                                 world: World) -> None:
    m = world.m1
    trade_no = world.parties["M1"].ids["trade_no"]
    other = world.parties["M1"].ids["waiting_trade_no"]
    target = f"/v1/payments/{trade_no}/refunds"
    body = json.dumps({"out_request_no": "TAMPER-1", "amount_fen": 100}).encode()
    bigger = json.dumps({"out_request_no": "TAMPER-1", "amount_fen": 2_400}).encode()

    def signed(method: str = "POST", path: str = target, data: bytes = body,
               **kw: Any) -> dict[str, str]:
        return s.sign_headers(m.key_id, m.secret, method, path, data,
                              timestamp=kw.pop("timestamp", now_s(ctx)), **kw)

    before = counts(ctx)
    cases = [
        # (what, method sent, target sent, body sent, headers) -> code
        ("body", "POST", target, bigger, signed(), "signature_mismatch"),
        ("body+digest", "POST", target, bigger, signed(send_digest=True), "digest_mismatch"),
        ("path", "POST", f"/v1/payments/{other}/refunds", body, signed(),
         "signature_mismatch"),
        ("query", "POST", f"{target}?amount_fen=2400", body, signed(), "signature_mismatch"),
        ("method", "POST", target, body, signed(method="GET"), "signature_mismatch"),
        ("nonce", "POST", target, body, {**signed(), s.NONCE: "another-nonce-1"},
         "signature_mismatch"),
        ("timestamp", "POST", target, body,
         {**signed(), s.TIMESTAMP: str(now_s(ctx) + 1)}, "signature_mismatch"),
        ("key id", "POST", target, body,
         {**signed(), s.KEY_ID: world.m2.key_id}, "signature_mismatch"),
        ("stale", "POST", target, body, signed(timestamp=now_s(ctx) - 301),
         "timestamp_stale"),
        ("ahead", "POST", target, body, signed(timestamp=now_s(ctx) + 301),
         "timestamp_stale"),
        ("epoch", "POST", target, body, signed(timestamp=0), "timestamp_stale"),
        ("far future", "POST", target, body, signed(timestamp=4_102_444_800),
         "timestamp_stale"),
    ]
    for what, method, sent_to, data, headers, code in cases:
        r = _merchant_send(client, method, sent_to, data, headers)
        assert assert_problem(r, 401)["code"] == code, (what, r.text)
        assert counts(ctx) == before, what
    # The untampered request still works once (refused ones did not spend its nonce) ...
    good = signed()
    r = _merchant_send(client, "POST", target, body, good)
    assert r.status_code in (200, 201), r.text
    after_one = counts(ctx)
    assert after_one["payment_refunds"] == before["payment_refunds"] + 1
    # ... and only once: the same bytes again, even with a fresh Idempotency-Key, or its
    # nonce under a new signature, are replays.
    for headers in (good, signed(nonce=good[s.NONCE], timestamp=now_s(ctx) + 5)):
        r = _merchant_send(client, "POST", target, body, headers)
        assert assert_problem(r, 401)["code"] == "nonce_replayed"
    # A replayed order creation does not make a second order either.
    order = json.dumps({"out_trade_no": "REPLAY-1", "amount_fen": 100, "subject": "x",
                        "payer_msisdn": world.a.msisdn}).encode()
    h = s.sign_headers(m.key_id, m.secret, "POST", "/v1/payments", order,
                       timestamp=now_s(ctx))
    assert _merchant_send(client, "POST", "/v1/payments", order, h).status_code == 201
    r = _merchant_send(client, "POST", "/v1/payments", order, h)
    assert assert_problem(r, 401)["code"] == "nonce_replayed"
    assert counts(ctx) == {**after_one, "payment_orders": after_one["payment_orders"] + 1}


def _mac_headers(ctx: Context, tid: str, key_hex: str, method: str, target: str,
                 body: bytes, *, ts: int | None = None, nonce: str | None = None
                 ) -> dict[str, str]:
    stamp = str(now_s(ctx) if ts is None else ts)
    nonce = nonce or uuid.uuid4().hex
    return {"X-Terminal-Id": tid, "X-Terminal-Timestamp": stamp, "X-Terminal-Nonce": nonce,
            "X-Terminal-MAC": terminal_auth.message_mac(bytes.fromhex(key_hex), method, target, tid,
                                             stamp, nonce, body),
            "Content-Type": "application/json"}


def test_tampered_terminal_messages_move_nothing(client: TestClient, ctx: Context,
                                                 world: World) -> None:
    t1 = world.parties["T1"]
    tid, key = t1.ids["terminal_id"], t1.ids["key_hex"]
    pos = world.pos["T1"]
    msg = pos.message(card_sim(world, "A"), 1_500, "000777")
    body = json.dumps(msg).encode()
    bigger = json.dumps({**msg, "amount_fen": 15_000}).encode()
    auth = "/v1/terminal/authorisations"

    def mac(method: str = "POST", target: str = auth, data: bytes = body,
            **kw: Any) -> dict[str, str]:
        return _mac_headers(ctx, tid, key, method, target, data, **kw)

    before = counts(ctx)
    cases = [
        ("body", auth, bigger, mac(), "terminal_mac_invalid"),
        ("path", "/v1/terminal/refunds", body, mac(), "terminal_mac_invalid"),
        ("query", f"{auth}?amount_fen=15000", body, mac(), "terminal_mac_invalid"),
        ("method", auth, body, mac(method="PUT"), "terminal_mac_invalid"),
        ("terminal", auth, body,
         {**mac(), "X-Terminal-Id": world.parties["T2"].ids["terminal_id"]},
         "terminal_mac_invalid"),
        ("nonce", auth, body, {**mac(), "X-Terminal-Nonce": "other-nonce-2"},
         "terminal_mac_invalid"),
        ("stale", auth, body, mac(ts=now_s(ctx) - 301), "terminal_timestamp_stale"),
        ("ahead", auth, body, mac(ts=now_s(ctx) + 301), "terminal_timestamp_stale"),
    ]
    for what, target, data, headers, code in cases:
        r = client.post(target, content=data, headers=headers)
        assert assert_problem(r, 401)["code"] == code, (what, r.text)
        assert counts(ctx) == before, what
    good = mac()
    r = client.post(auth, content=body, headers=good)
    assert r.status_code == 200 and r.json()["approved"] is True, r.text
    after_one = counts(ctx)
    assert after_one["ledger_transfers"] == before["ledger_transfers"] + 1
    r = client.post(auth, content=body, headers=good)
    assert assert_problem(r, 401)["code"] == "terminal_nonce_replayed"
    # a reversal replayed: reversed once, the second copy refused
    rev = json.dumps({"batch_no": msg["batch_no"], "stan": "000777",
                      "amount_fen": 1_500}).encode()
    h = mac(target="/v1/terminal/reversals", data=rev)
    assert client.post("/v1/terminal/reversals", content=rev, headers=h).status_code == 200
    r = client.post("/v1/terminal/reversals", content=rev, headers=h)
    assert assert_problem(r, 401)["code"] == "terminal_nonce_replayed"
    assert counts(ctx)["ledger_transfers"] == after_one["ledger_transfers"] + 1


def test_unsigned_and_half_signed_requests(client: TestClient, ctx: Context,
                                           world: World) -> None:
    """Signing headers of the other scheme, or empty values, never authenticate."""
    m = world.m1
    before = counts(ctx)
    body = json.dumps({"out_trade_no": "HALF-1", "amount_fen": 100, "subject": "x",
                       "payer_msisdn": world.a.msisdn}).encode()
    full = s.sign_headers(m.key_id, m.secret, "POST", "/v1/payments", body,
                          timestamp=now_s(ctx))
    sig = full[s.SIGNATURE].upper()
    last = "1" if sig[-1] == "0" else "0"  # a different last digit, whatever the nonce gave
    for headers in ({**full, s.SIGNATURE: ""}, {**full, s.SIGNATURE: "0" * 64},
                    {**full, s.SIGNATURE: sig[:-1] + last},
                    {k: v for k, v in full.items() if k != s.NONCE},
                    {**full, s.TIMESTAMP: "-1"}, {**full, s.TIMESTAMP: "1e9"},
                    {**full, s.KEY_ID: m.key_id + "x"}):
        r = client.post("/v1/payments", content=body,
                        headers={"Content-Type": "application/json", **headers})
        assert_problem(r, 401)
    assert counts(ctx) == before
