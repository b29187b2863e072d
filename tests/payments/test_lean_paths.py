"""The lean request path (api/lean.py) answers as FastAPI's own path does.

Two apps share one database and clock: the test's own, where the four hot operations take
the lean path, and one built with ``lean_routes=False``. Each request is sent to both. What
refuses (no credentials, a bad token or MAC, malformed JSON, a wrong content type, a missing
or invalid field or header, a bad path parameter, a business refusal) must be answered with
the same status, headers and body, byte for byte; a success with the same status, headers
and fields (ids and times differ, since each app made its own).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cash_helpers import PIN, fund, idem, msisdn, wallet  # type: ignore[import-not-found]
from fastapi.testclient import TestClient
from payment_helpers import order_body, signed  # type: ignore[import-not-found]
from sqlalchemy import Engine

from paycell.api.app import create_app
from paycell.api.routing import LeanRoute
from paycell.clock import ManualClock
from paycell.config import Settings
from paycell.context import Context
from paycell.ledger import TransferRequest
from paycell.ledger.chart import Code, TransferCode, system_account
from paycell.merchants.model import OnboardedMerchant
from paycell.merchants.service import add_store
from paycell.onsite import cards, terminals
from paycell.onsite.card_sim import CardSim
from paycell.onsite.keystore import KeyStore
from paycell.onsite.pos_sim import PosSim, TerminalAuth

_VARYING = {"date", "content-length"}


@pytest.fixture
def full(settings: Settings, engine: Engine, clock: ManualClock) -> Iterator[TestClient]:
    """The same app on the same database, every request through FastAPI's own path."""
    app = create_app(settings.model_copy(update={"lean_routes": False}), engine=engine,
                     clock=clock)
    with TestClient(app) as c:
        yield c


def _headers(r: httpx.Response) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in r.headers.items() if k not in _VARYING)


def both(client: TestClient, full: TestClient, method: str, path: str,
         **kw: Any) -> tuple[httpx.Response, httpx.Response]:
    a = client.request(method, path, **kw)
    b = full.request(method, path, **kw)
    return a, b


def same(pair: tuple[httpx.Response, httpx.Response]) -> httpx.Response:
    a, b = pair
    assert (a.status_code, _headers(a), a.content) == (b.status_code, _headers(b), b.content)
    return a


def alike(pair: tuple[httpx.Response, httpx.Response]) -> httpx.Response:
    a, b = pair
    assert (a.status_code, _headers(a)) == (b.status_code, _headers(b))
    assert sorted(a.json()) == sorted(b.json())
    return a


def test_the_hot_operations_take_the_lean_path_only_in_the_lean_app(
        client: TestClient, full: TestClient) -> None:
    def lean_paths(c: TestClient) -> set[str]:
        ix = c.app.router.routes[0]  # type: ignore[attr-defined]
        return {r.path for r in ix._routes if isinstance(r, LeanRoute)}

    assert len(lean_paths(client)) == 4
    assert lean_paths(full) == set()


def test_p2p_answers_are_the_same(client: TestClient, full: TestClient, ctx: Context) -> None:
    sender, auth = wallet(ctx)
    fund(ctx, sender, 50_000)
    to = msisdn()
    wallet(ctx, to)
    path = "/v1/wallet/transfers"
    good = {"to_msisdn": to, "amount_fen": 100, "pin": PIN}
    json_h = {"Content-Type": "application/json"}
    raw = json.dumps(good).encode()
    for kw in [
        {"json": good},  # no token
        {"json": good, "headers": {"Authorization": "Bearer nope"}},
        {"json": good, "headers": {"Authorization": "Basic abc"}},
        {"content": b"{not json", "headers": json_h},  # JSON is read before the token
        {"content": b"{not json", "headers": {**auth, **json_h}},
        {"content": b'{"to_msisdn": "x"', "headers": {**auth, **json_h}},
        {"content": b"\xa1{", "headers": {**auth, **json_h}},  # not UTF-8
        {"json": [], "headers": auth},
        {"json": {}, "headers": auth},
        {"json": None, "headers": auth},
        {"headers": auth},  # no body
        {"content": b"", "headers": {**auth, **json_h}},
        {"json": {**good, "amount_fen": -5}, "headers": auth},
        {"json": {**good, "amount_fen": "lots", "pin": 7}, "headers": auth},
        {"json": {**good, "amount_fen": 1.5}, "headers": auth},
        {"json": {**good, "note": "x" * 10_000}, "headers": auth},
        {"json": {**good, "surprise": True}, "headers": auth},
        {"content": raw, "headers": auth},  # no content type
        {"content": raw, "headers": {**auth, "Content-Type": "text/plain"}},
        {"content": raw, "headers": {**auth, "Content-Type": "application/merge-patch+json"}},
        {"content": raw, "headers": {**auth, "Content-Type": "application/json; charset=utf-8"}},
        {"json": good, "headers": auth},  # no Idempotency-Key
        {"json": good, "headers": {**auth, "Idempotency-Key": ""}},
        {"json": good, "headers": {**auth, "Idempotency-Key": "k" * 500}},
    ]:
        same(both(client, full, "POST", path, **kw))
    # Refusals that touch the database answer the same too (each app its own key).
    for body in [{**good, "pin": "000000"}, {**good, "amount_fen": 10**9},
                 {**good, "to_msisdn": sender.msisdn}, {**good, "to_msisdn": "12"}]:
        a = client.post(path, json=body, headers={**auth, **idem()})
        b = full.post(path, json=body, headers={**auth, **idem()})
        assert (a.status_code, a.json()["code"]) == (b.status_code, b.json()["code"]), body
    # A success, and its replay.
    key = idem()
    r = alike((client.post(path, json=good, headers={**auth, **key}),
               full.post(path, json=good, headers={**auth, **idem()})))
    assert r.status_code == 201
    again = (client.post(path, json=good, headers={**auth, **key}),
             full.post(path, json=good, headers={**auth, **key}))
    assert again[0].content == again[1].content == r.content


def test_order_create_and_confirm_answers_are_the_same(
        client: TestClient, full: TestClient, ctx: Context, shop: OnboardedMerchant) -> None:
    payer, auth = wallet(ctx)
    fund(ctx, payer, 50_000)
    m = signed(ctx, shop)
    for kw in [
        {"json": order_body(payer.msisdn)},  # unsigned
        {"json": order_body(payer.msisdn), "headers": {"X-Paycell-Key-Id": "nobody"}},
        {"content": b"{oops", "headers": {"Content-Type": "application/json"}, "auth": m},
        {"json": {}, "auth": m},
        {"json": order_body(payer.msisdn, amount_fen=0), "auth": m},
        {"json": order_body(payer.msisdn, currency="USD", subject=""), "auth": m},
    ]:
        same(both(client, full, "POST", "/v1/payments", **kw))
    a = client.post("/v1/payments", json=order_body(payer.msisdn, 1), auth=m,
                    headers=idem())
    b = full.post("/v1/payments", json=order_body(payer.msisdn, 2), auth=m, headers=idem())
    alike((a, b))
    assert a.status_code == 201
    nobody = client.post("/v1/payments", json=order_body(msisdn(), 3), auth=m, headers=idem())
    assert nobody.json()["code"] == full.post(
        "/v1/payments", json=order_body(msisdn(), 4), auth=m, headers=idem()).json()["code"]

    confirm = "/v1/wallet/payments/{}/confirm"
    ta, tb = a.json()["trade_no"], b.json()["trade_no"]
    for trade_no, kw in [
        (ta, {"json": {"pin": PIN}}),  # no token
        ("not a trade number", {"json": {"pin": PIN}, "headers": auth}),
        (ta, {"json": {"pin": 123456}, "headers": auth}),
        (ta, {"json": {"pin": PIN, "source": "gold"}, "headers": auth}),
        (ta, {"content": b"[", "headers": {**auth, "Content-Type": "application/json"}}),
    ]:
        same(both(client, full, "POST", confirm.format(trade_no), **kw))
    wrong = [c.post(confirm.format(t), json={"pin": "000000"}, headers={**auth, **idem()})
             for c, t in ((client, ta), (full, tb))]
    assert [w.status_code for w in wrong] == [403, 403], [w.text for w in wrong]
    assert wrong[0].json()["code"] == wrong[1].json()["code"]
    paid = alike((client.post(confirm.format(ta), json={"pin": PIN}, headers={**auth, **idem()}),
                  full.post(confirm.format(tb), json={"pin": PIN}, headers={**auth, **idem()})))
    assert paid.status_code == 200 and paid.json()["state"] in {"paid", "succeeded"}


def test_tap_answers_are_the_same(client: TestClient, full: TestClient, ctx: Context,
                                  shop: OnboardedMerchant) -> None:
    add_store(ctx, shop.merchant.id, "S1", "Inkwell S1", "1 Nanjing Road", "test")
    assert shop.merchant.payable_account_id is not None  # the terminal's deposit
    ctx.ledger.post_one(TransferRequest(
        "test:payable", system_account(ctx.ledger, Code.BANK_CLEARING, "testbank").id,
        shop.merchant.payable_account_id, 200_000, code=TransferCode.TOPUP_BANK, ref="test"))
    sub, _ = wallet(ctx)
    fund(ctx, sub, 100_000)
    card = cards.activate(ctx, cards.issue_card(ctx, sub, "89860000000000000019").id)
    sim = CardSim.personalised(KeyStore(ctx.settings), card.pan, card.psn)
    reg = terminals.register_terminal(ctx, shop.merchant.code, "S1", "test")
    pos = PosSim(client, reg.terminal.terminal_id, reg.key_hex, shop.merchant.code, "S1",
                 clock=ctx.clock)
    pos.sign_on()
    mac = TerminalAuth(reg.terminal.terminal_id, bytes.fromhex(reg.key_hex), clock=ctx.clock)
    wrong = TerminalAuth(reg.terminal.terminal_id, bytes(16), clock=ctx.clock)
    path = "/v1/terminal/authorisations"
    msg = pos.message(sim, 1_500, pos.next_stan())
    for kw in [
        {"json": msg},  # no MAC
        {"json": msg, "auth": wrong},
        {"json": {**msg, "stan": "12"}, "auth": mac},
        {"json": {**msg, "amount_fen": 0}, "auth": mac},
        {"json": {k: v for k, v in msg.items() if k != "arqc"}, "auth": mac},
        {"content": b"{", "headers": {"Content-Type": "application/json"}, "auth": mac},
    ]:
        same(both(client, full, "POST", path, **kw))
    # Two taps of the same card, one through each app: both approved, the same fields.
    a = client.post(path, json=msg, auth=mac)
    b = full.post(path, json=pos.message(sim, 1_500, pos.next_stan()), auth=mac)
    alike((a, b))
    assert a.json()["approved"] and b.json()["approved"]
    # The same message again is a replay of its ATC: refused alike by both paths.
    c = client.post(path, json=msg, auth=mac)
    d = full.post(path, json=msg, auth=mac)
    assert (c.status_code, c.json()) == (d.status_code, d.json())


def test_dependency_overrides_send_requests_the_normal_way(
        client: TestClient, ctx: Context) -> None:
    from paycell.subscribers.auth import current_subscriber

    sub, _ = wallet(ctx)
    fund(ctx, sub, 1_000)
    app = client.app
    app.dependency_overrides[current_subscriber] = lambda: sub  # type: ignore[attr-defined]
    try:
        r = client.post("/v1/wallet/transfers", headers=idem(),
                        json={"to_msisdn": msisdn(), "amount_fen": 100, "pin": PIN})
    finally:
        app.dependency_overrides.clear()  # type: ignore[attr-defined]
    assert r.status_code == 201, r.text
