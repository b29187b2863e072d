"""The statement: newest first, signed amounts, hold statuses, filters, pagination, and
nobody reads anyone else's."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from wallets import bearer, fund, login, pay, signup

from paycell.clock import ManualClock
from paycell.context import Context
from paycell.ledger import TransferFlags, TransferRequest
from paycell.ledger.chart import TransferCode
from paycell.subscribers.service import get_subscriber

A, B = "+8613800138000", "+8613900139000"


def _settle(ctx: Context, hold: str, *, amount: int | None = None, void: bool = False) -> None:
    flags = TransferFlags.VOID_PENDING if void else TransferFlags.POST_PENDING
    ctx.ledger.post_one(TransferRequest(f"{hold}:done", flags=flags, pending_id=hold,
                                        amount=amount, ledger=None))


def _all(client: TestClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        q = {**params, **({"cursor": cursor} if cursor else {})}
        r = client.get("/v1/wallet/statement", params=q, headers=headers)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return items


def test_statement_lines(client: TestClient, ctx: Context, clock: ManualClock) -> None:
    a = get_subscriber(ctx, signup(client, A)["id"])
    b = get_subscriber(ctx, signup(client, B)["id"])
    funded = fund(ctx, a, 50_000)
    clock.advance(hours=1)
    p2p = pay(ctx, a, 1_314, to_sub=b, code=TransferCode.P2P)
    clock.advance(hours=1)
    posted = pay(ctx, a, 2_000, hold=True, code=TransferCode.ESCROW_HOLD)
    voided = pay(ctx, a, 3_000, hold=True, code=TransferCode.ESCROW_HOLD)
    pending = pay(ctx, a, 4_000, hold=True, code=TransferCode.ESCROW_HOLD)
    _settle(ctx, posted, amount=1_500)
    _settle(ctx, voided, void=True)
    ta, tb = login(client, A), login(client, B)  # (tokens live 15 minutes)
    lines = _all(client, bearer(ta))
    assert [x["id"] for x in lines] == [pending, voided, posted, p2p, funded]
    by_id = {x["id"]: x for x in lines}
    assert by_id[funded] | {} == {
        "id": funded, "type": "topup_bank", "amount_fen": 50_000, "currency": "CNY",
        "status": "posted", "settled_fen": None, "counterparty_type": "bank",
        "counterparty": None, "description": "test funding",
        "created_at": "2026-01-01T00:00:00Z"}
    assert (by_id[p2p]["amount_fen"], by_id[p2p]["counterparty_type"],
            by_id[p2p]["counterparty"]) == (-1_314, "wallet", "+86139****9000")
    assert (by_id[posted]["status"], by_id[posted]["settled_fen"]) == ("posted", -1_500)
    assert by_id[voided]["status"] == "voided" and by_id[pending]["status"] == "pending"
    assert by_id[pending]["created_at"] == "2026-01-01T02:00:00Z"
    balance = client.get("/v1/wallet", headers=bearer(ta)).json()
    assert balance["balance_fen"] == 50_000 - 1_314 - 1_500
    assert balance["pending_fen"] == 4_000
    assert balance["available_fen"] == balance["balance_fen"] - 4_000
    # The other side of the P2P sees it as money in, from A.
    [line] = _all(client, bearer(tb))
    assert (line["id"], line["amount_fen"], line["counterparty"]) == (p2p, 1_314,
                                                                      "+86138****8000")


def test_filters_and_pages(client: TestClient, ctx: Context, clock: ManualClock) -> None:
    a = get_subscriber(ctx, signup(client, A)["id"])
    b = get_subscriber(ctx, signup(client, B)["id"])
    fund(ctx, a, 90_000)
    ids = []
    for _ in range(7):
        clock.advance(hours=6)
        ids.append(pay(ctx, a, 100, to_sub=b, code=TransferCode.P2P))
        pay(ctx, a, 200)
    ta = login(client, A)
    p2p = _all(client, bearer(ta), type="p2p", limit=2)
    assert [x["id"] for x in p2p] == ids[::-1]
    both = _all(client, bearer(ta), type=["p2p", "purchase"], limit=3)
    assert len(both) == 14
    assert len(_all(client, bearer(ta), limit=1)) == 15
    window = _all(client, bearer(ta), type="p2p", **{"from": "2026-01-01T12:00:00Z",
                                                     "to": "2026-01-02T06:00:00+00:00"})
    assert [x["id"] for x in window] == ids[1:4][::-1]  # 12:00, 18:00, 00:00 next day
    for params, code in (({"type": "bogus"}, "statement_type_invalid"),
                         ({"from": "2026-01-01T12:00:00"}, "statement_range_invalid"),
                         ({"from": "2026-01-03T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
                          "statement_range_invalid"),
                         ({"cursor": "garbage"}, "cursor_invalid"),
                         ({"limit": 0}, "validation_error")):
        r = client.get("/v1/wallet/statement", params=params, headers=bearer(ta))
        assert r.status_code == 422 and r.json()["code"] == code, (params, r.text)


def test_nobody_reads_another_subscribers_statement(client: TestClient, ctx: Context,
                                                    operator: dict[str, str]) -> None:
    a = get_subscriber(ctx, signup(client, A)["id"])
    b = get_subscriber(ctx, signup(client, B)["id"])
    ta, tb = login(client, A), login(client, B)
    for _ in range(3):
        fund(ctx, a, 1_000)
        fund(ctx, b, 2_000)
    page_b = client.get("/v1/wallet/statement", params={"limit": 1}, headers=bearer(tb)).json()
    assert page_b["next_cursor"]
    # B's cursor is tied to B's wallet: A cannot page through B's statement with it.
    r = client.get("/v1/wallet/statement", params={"cursor": page_b["next_cursor"]},
                   headers=bearer(ta))
    assert r.status_code == 422 and r.json()["code"] == "cursor_invalid"
    mine = _all(client, bearer(ta))
    assert len(mine) == 3 and all(x["amount_fen"] == 1_000 for x in mine)
    # There is no URL naming another wallet for a subscriber; operator views need the key.
    r = client.get(f"/v1/operator/subscribers/{b.id}", headers=bearer(ta))
    assert r.status_code == 401
    assert client.get(f"/v1/wallet/statement?subscriber_id={b.id}",
                      headers=bearer(ta)).json()["items"] == mine[:20]
    assert client.get(f"/v1/operator/subscribers/{b.id}", headers=operator).status_code == 200
