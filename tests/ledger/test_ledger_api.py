"""The ledger's operator API: accounts, transfers with cursor pagination, holds, audit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from paycell.api.app import create_app
from paycell.clock import ManualClock
from paycell.config import Settings
from paycell.ledger.chart import Code, open_account, system_account
from paycell.ledger.model import TransferFlags, TransferRequest
from paycell.ledger.store import Ledger

KEY = "ledger-api-test-key"
AUTH = {"X-API-Key": KEY}
START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@dataclass
class World:
    client: TestClient
    ledger: Ledger
    clock: ManualClock
    bank: int
    wallet: int
    shop: int


@pytest.fixture
def world(db_url: str, engine: Engine) -> Iterator[World]:
    clock = ManualClock(START)
    settings = Settings(_env_file=None, database_url=db_url, run_workers=False,
                        operator_api_key=KEY)
    with TestClient(create_app(settings, engine=engine, clock=clock)) as client:
        ledger: Ledger = client.app.state.ledger  # type: ignore[attr-defined]
        bank = system_account(ledger, Code.BANK_CLEARING, "icbc").id
        wallet = open_account(ledger, "wallet:test:+8613800000001", Code.WALLET).id
        shop = open_account(ledger, "merchant_payable:test:shop", Code.MERCHANT_PAYABLE).id
        yield World(client, ledger, clock, bank, wallet, shop)


def get(w: World, path: str, **params: object) -> dict:
    r = w.client.get(path, params=params, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    body: dict = r.json()
    return body


def test_account_shows_counters_balance_and_available(world: World) -> None:
    w = world
    w.ledger.post_one(TransferRequest("topup-1", w.bank, w.wallet, 10_000))
    w.clock.advance(60)
    w.ledger.post_one(TransferRequest("buy-1", w.wallet, w.shop, 2_500))
    w.ledger.post_one(TransferRequest("hold-1", w.wallet, w.shop, 1_000,
                                      flags=TransferFlags.PENDING, timeout=3600))
    a = get(w, f"/v1/ledger/accounts/{w.wallet}")
    assert a == {
        "id": w.wallet, "name": "wallet:test:+8613800000001", "currency": "CNY",
        "code": 100, "code_name": "wallet", "owner_ref": None,
        "flags": ["debits_must_not_exceed_credits"], "closed": False,
        "debits_pending": 1_000, "debits_posted": 2_500, "credits_pending": 0,
        "credits_posted": 10_000, "balance_fen": 7_500, "available_fen": 6_500,
        "created_at": "2026-03-01T08:00:00Z",
    }
    bank = get(w, f"/v1/ledger/accounts/{w.bank}")
    assert (bank["code_name"], bank["flags"], bank["debits_posted"]) == (
        "bank_clearing", [], 10_000)


def test_closed_account_says_so(world: World) -> None:
    world.ledger.close_account(world.shop)
    a = get(world, f"/v1/ledger/accounts/{world.shop}")
    assert a["closed"] is True
    assert "closed" in a["flags"]


def test_find_account_by_name(world: World) -> None:
    found = get(world, "/v1/ledger/accounts", name="merchant_payable:test:shop")
    assert [a["id"] for a in found["items"]] == [world.shop]
    assert found["next_cursor"] is None
    assert get(world, "/v1/ledger/accounts", name="wallet:test:nobody")["items"] == []


def _page_through(w: World, account: int, limit: int) -> tuple[list[str], int]:
    ids: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        params: dict[str, object] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        page = get(w, f"/v1/ledger/accounts/{account}/transfers", **params)
        pages += 1
        assert len(page["items"]) <= limit
        ids += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, pages
        assert pages < 50, "pagination does not end"


@pytest.mark.parametrize(("limit", "pages"), [(3, 3), (4, 2), (7, 1), (200, 1)])
def test_transfers_paginate_in_journal_order(world: World, limit: int, pages: int) -> None:
    w = world
    w.ledger.post_one(TransferRequest("topup", w.bank, w.wallet, 50_000))
    expected = ["topup"]
    for i in range(6):
        w.clock.advance(60)
        # Transfers of other accounts in between must not show up nor break the pages.
        w.ledger.post_one(TransferRequest(f"other-{i}", w.bank, w.shop, 100))
        if i % 2:
            w.ledger.post_one(TransferRequest(f"buy-{i}", w.wallet, w.shop, 100 + i))
            expected.append(f"buy-{i}")
        else:
            w.ledger.post_one(TransferRequest(f"refund-{i}", w.shop, w.wallet, 50))
            expected.append(f"refund-{i}")
    assert len(expected) == 7
    ids, n = _page_through(w, w.wallet, limit)
    assert ids == expected
    assert n == pages


def test_a_cursor_stays_valid_while_new_transfers_arrive(world: World) -> None:
    w = world
    for i in range(3):
        w.ledger.post_one(TransferRequest(f"t{i}", w.bank, w.wallet, 100))
    first = get(w, f"/v1/ledger/accounts/{w.wallet}/transfers", limit=2)
    w.ledger.post_one(TransferRequest("t3", w.bank, w.wallet, 100))
    rest = get(w, f"/v1/ledger/accounts/{w.wallet}/transfers", limit=2,
               cursor=first["next_cursor"])
    assert [t["id"] for t in first["items"] + rest["items"]] == ["t0", "t1", "t2", "t3"]
    assert rest["next_cursor"] is None


def test_transfers_of_an_account_without_any(world: World) -> None:
    assert get(world, f"/v1/ledger/accounts/{world.shop}/transfers") == {
        "items": [], "next_cursor": None}


def test_transfers_of_an_unknown_account_is_404(world: World) -> None:
    r = world.client.get("/v1/ledger/accounts/987654/transfers", headers=AUTH)
    assert r.status_code == 404
    assert r.json()["code"] == "account_not_found"


def test_transfer_by_id(world: World) -> None:
    w = world
    t = w.ledger.post_one(TransferRequest("topup-7", w.bank, w.wallet, 1_234, code=1001,
                                          ref="top-up by ICBC card"))
    body = get(w, "/v1/ledger/transfers/topup-7")
    assert body == {
        "id": "topup-7", "seq": t.seq, "debit_account_id": w.bank,
        "credit_account_id": w.wallet, "amount_fen": 1_234, "currency": "CNY", "code": 1001,
        "flags": [], "pending_id": None, "timeout_s": 0, "ref": "top-up by ICBC card",
        "created_at": "2026-03-01T08:00:00Z", "prev_hash": t.prev_hash, "hash": t.hash,
    }
    r = w.client.get("/v1/ledger/transfers/nope", headers=AUTH)
    assert r.status_code == 404
    assert r.json()["code"] == "transfer_not_found"
    assert r.json()["transfer_id"] == "nope"


def test_hold_follows_its_life(world: World) -> None:
    w = world
    w.ledger.post_one(TransferRequest("topup", w.bank, w.wallet, 5_000))
    w.ledger.post_one(TransferRequest("escrow-1", w.wallet, w.shop, 3_000,
                                      flags=TransferFlags.PENDING, timeout=600))
    hold = get(w, "/v1/ledger/holds/escrow-1")
    assert hold == {
        "transfer_id": "escrow-1", "debit_account_id": w.wallet, "credit_account_id": w.shop,
        "amount_fen": 3_000, "currency": "CNY", "status": "pending",
        "expires_at": "2026-03-01T08:10:00Z", "resolved_by": None,
    }
    w.ledger.post_one(TransferRequest("escrow-1:confirm", pending_id="escrow-1", ledger=None,
                                      amount=2_000, flags=TransferFlags.POST_PENDING))
    hold = get(w, "/v1/ledger/holds/escrow-1")
    assert (hold["status"], hold["resolved_by"]) == ("posted", "escrow-1:confirm")
    post = get(w, "/v1/ledger/transfers/escrow-1:confirm")
    assert (post["flags"], post["pending_id"], post["amount_fen"]) == (
        ["post_pending"], "escrow-1", 2_000)
    r = w.client.get("/v1/ledger/holds/topup", headers=AUTH)  # a transfer, not a hold
    assert r.status_code == 404
    assert r.json()["code"] == "hold_not_found"


def test_audit_endpoint_reports_a_clean_ledger(world: World) -> None:
    w = world
    w.ledger.post_one(TransferRequest("topup", w.bank, w.wallet, 5_000))
    w.ledger.post([
        TransferRequest("buy", w.wallet, w.shop, 1_000, flags=TransferFlags.LINKED),
        TransferRequest("fee", w.shop, system_account(w.ledger, Code.REVENUE_COMMISSION).id,
                        10),
    ])
    report = get(w, "/v1/ledger/audit")
    assert report["ok"] is True
    assert (report["accounts"], report["transfers"]) == (4, 3)
    assert len(report["checks"]) >= 5
    assert all(c["ok"] and c["problems"] == [] for c in report["checks"])
    assert {"name", "ok", "detail", "problems"} == set(report["checks"][0])


def test_balances_of_one_account_type_come_in_one_snapshot(world: World) -> None:
    w = world
    other = open_account(w.ledger, "wallet:test:+8613800000002", Code.WALLET).id
    w.ledger.post([TransferRequest("fund-1", w.bank, w.wallet, 10_000),
                   TransferRequest("fund-2", w.bank, other, 5_000)])
    w.ledger.post_one(TransferRequest("p2p-1", w.wallet, other, 1_234))
    snap = get(w, "/v1/ledger/balances", code=int(Code.WALLET), with_accounts=True)
    assert (snap["accounts"], snap["total_fen"], snap["negative"]) == (2, 15_000, 0)
    assert snap["code_name"] == "wallet" and snap["min_balance_fen"] == 6_234
    assert snap["balances"] == {str(w.wallet): 8_766, str(other): 6_234}
    assert get(w, "/v1/ledger/balances", code=int(Code.WALLET))["balances"] == {}
    bank = get(w, "/v1/ledger/balances", code=int(Code.BANK_CLEARING))
    assert bank["total_fen"] == 15_000  # debit-normal: what the bank owes us
    assert w.client.get("/v1/ledger/balances", params={"code": 100}).status_code == 401
    bad = w.client.get("/v1/ledger/balances", params={"code": -1}, headers=AUTH)
    assert bad.status_code == 422
