"""Top-ups from a bank card over real HTTP to the loopback bank, on both databases:
confirmed, rejected (nothing credited), a bank that times out or answers later (pending,
then the status-query job resolves it either way), a lost request, retries with the same
Idempotency-Key, the balance cap, and the operators' view and CLI."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from funding_helpers import (  # type: ignore[import-not-found]
    GOOD_CARD,
    OPERATOR,
    POOR_CARD,
    Sims,
    balance,
    bind_card,
    client,
    clock,
    ctx,
    idem,
    settings,
    sims,
    topup,
    wallet,
)
from typer.testing import CliRunner

from paycell.cli import app
from paycell.clock import ManualClock
from paycell.context import Context
from paycell.funding.jobs import pending_operations, resolve_pending
from paycell.gateways.bank import HttpBank
from paycell.ledger.chart import Code, TransferCode, system_account

__all__ = ["client", "clock", "ctx", "settings", "sims"]


def _setup(client: TestClient, ctx: Context, pan: str = GOOD_CARD) -> tuple[Any, dict[str, str],
                                                                             dict[str, Any]]:
    sub, auth = wallet(ctx)
    return sub, auth, bind_card(client, ctx, sub, auth, pan)


def _after_query_delay(clock: ManualClock, ctx: Context) -> None:
    clock.advance(ctx.settings.funding_query_after_s + 1)


def test_a_confirmed_topup_credits_the_wallet_once(client: TestClient, ctx: Context,
                                                   sims: Sims) -> None:
    sub, auth, card = _setup(client, ctx)
    before = sims.card(GOOD_CARD)["balance_fen"]
    t = topup(client, auth, 12_345)
    assert (t["state"], t["source"], t["partner"], t["card_id"]) == (
        "confirmed", "card", "icbc", card["id"])
    assert balance(ctx, sub) == 12_345
    assert sims.card(GOOD_CARD)["balance_fen"] == before - 12_345
    moved = ctx.ledger.transfer(f"topup:{t['id']}")
    clearing = system_account(ctx.ledger, Code.BANK_CLEARING, "icbc")
    assert moved is not None and moved.code == TransferCode.TOPUP_BANK
    assert (moved.debit_account_id, moved.credit_account_id, moved.amount) == (
        clearing.id, sub.wallet_account_id, 12_345)
    assert client.get(f"/v1/wallet/topups/{t['id']}", headers=auth).json() == t
    page = client.get("/v1/wallet/topups", headers=auth).json()
    assert [x["id"] for x in page["items"]] == [t["id"]] and page["next_cursor"] is None


def test_a_rejected_topup_credits_nothing(client: TestClient, ctx: Context,
                                          sims: Sims) -> None:
    sub, auth, _ = _setup(client, ctx, POOR_CARD)
    t = topup(client, auth, 5_000)
    assert (t["state"], t["reason"]) == ("failed", "insufficient_funds")
    sims.card(POOR_CARD, balance_fen=10_000, blocked=True)
    t2 = topup(client, auth, 5_000)
    assert (t2["state"], t2["reason"]) == ("failed", "card_blocked")
    assert balance(ctx, sub) == 0
    assert ctx.ledger.transfer(f"topup:{t['id']}") is None
    assert pending_operations(ctx) == []


def test_bank_times_out_then_the_job_confirms(client: TestClient, ctx: Context, sims: Sims,
                                              clock: ManualClock) -> None:
    sub, auth, _ = _setup(client, ctx)
    sims.next_bank(GOOD_CARD, "timeout")
    t = topup(client, auth, 7_000)
    assert t["state"] == "pending"  # no answer in time: not "success"
    assert balance(ctx, sub) == 0
    assert [p.reference for p in pending_operations(ctx)] == [f"topup:{t['id']}"]
    assert resolve_pending(ctx) == 0  # not due yet: the call might still be in flight
    _after_query_delay(clock, ctx)
    assert resolve_pending(ctx) == 1
    done = client.get(f"/v1/wallet/topups/{t['id']}", headers=auth).json()
    assert done["state"] == "confirmed" and balance(ctx, sub) == 7_000
    assert resolve_pending(ctx, force=True) == 0 and balance(ctx, sub) == 7_000


def test_bank_times_out_then_the_job_finds_it_rejected(client: TestClient, ctx: Context,
                                                       sims: Sims, clock: ManualClock) -> None:
    sub, auth, _ = _setup(client, ctx)
    sims.card(GOOD_CARD, balance_fen=100)
    sims.next_bank(GOOD_CARD, "timeout")
    t = topup(client, auth, 7_000)
    assert t["state"] == "pending"
    _after_query_delay(clock, ctx)
    assert resolve_pending(ctx) == 1
    done = client.get(f"/v1/wallet/topups/{t['id']}", headers=auth).json()
    assert (done["state"], done["reason"]) == ("failed", "insufficient_funds")
    assert balance(ctx, sub) == 0


def test_a_delayed_answer_resolves_either_way(client: TestClient, ctx: Context, sims: Sims,
                                              clock: ManualClock) -> None:
    sub, auth, _ = _setup(client, ctx)
    sims.next_bank(GOOD_CARD, "delayed", "delayed")
    yes, no = topup(client, auth, 1_000), topup(client, auth, 2_000)
    assert yes["state"] == no["state"] == "pending"
    _after_query_delay(clock, ctx)
    assert resolve_pending(ctx) == 0  # the bank still says pending
    sims.settle_bank(f"topup:{yes['id']}", "approved")
    sims.settle_bank(f"topup:{no['id']}", "rejected", "suspected_fraud")
    _after_query_delay(clock, ctx)
    assert resolve_pending(ctx) == 2
    states = {t["id"]: (t["state"], t["reason"]) for t in
              client.get("/v1/wallet/topups", headers=auth).json()["items"]}
    assert states == {yes["id"]: ("confirmed", None), no["id"]: ("failed", "suspected_fraud")}
    assert balance(ctx, sub) == 1_000


def test_a_request_the_bank_never_got_fails_after_the_grace(
        client: TestClient, ctx: Context, sims: Sims, clock: ManualClock) -> None:
    sub, auth, _ = _setup(client, ctx)
    sims.next_bank(GOOD_CARD, "lost")
    t = topup(client, auth, 3_000)
    assert t["state"] == "pending"
    _after_query_delay(clock, ctx)
    assert resolve_pending(ctx) == 0  # "not found" may still mean "not arrived yet"
    clock.advance(ctx.settings.funding_not_found_grace_s)
    assert resolve_pending(ctx) == 1
    done = client.get(f"/v1/wallet/topups/{t['id']}", headers=auth).json()
    assert (done["state"], done["reason"]) == ("failed", "not_received")
    assert balance(ctx, sub) == 0


def test_an_unreachable_bank_fails_at_once(client: TestClient, ctx: Context) -> None:
    sub, auth, _ = _setup(client, ctx)
    ctx.bank = HttpBank("http://127.0.0.1:9", timeout_s=0.5)  # nothing listens on port 9
    t = topup(client, auth, 3_000)
    assert (t["state"], t["reason"]) == ("failed", "bank_unavailable")
    assert balance(ctx, sub) == 0


def test_the_same_key_makes_one_topup(client: TestClient, ctx: Context, sims: Sims) -> None:
    sub, auth, _ = _setup(client, ctx)
    before = sims.card(GOOD_CARD)["balance_fen"]
    headers = idem(**auth)
    body = {"source": "card", "amount_fen": 4_000}
    answers = [client.post("/v1/wallet/topups", json=body, headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert answers[1].headers.get("Idempotent-Replayed") == "true"
    assert len({a.json()["id"] for a in answers}) == 1
    assert balance(ctx, sub) == 4_000
    assert sims.card(GOOD_CARD)["balance_fen"] == before - 4_000
    r = client.post("/v1/wallet/topups", json={**body, "amount_fen": 4_001}, headers=headers)
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused"


def test_the_balance_cap_is_checked_before_and_at_confirmation(
        client: TestClient, ctx: Context, sims: Sims, clock: ManualClock) -> None:
    sub, auth, _ = _setup(client, ctx)  # tier 0: at most 1,000.00 CNY
    before = sims.card(GOOD_CARD)["balance_fen"]
    r = client.post("/v1/wallet/topups", json={"source": "card", "amount_fen": 100_001},
                    headers=idem(**auth))
    assert r.status_code == 409 and r.json()["code"] == "balance_cap_exceeded"
    assert sims.card(GOOD_CARD)["balance_fen"] == before  # the bank was never asked
    # Two delayed top-ups each fit, together they do not: the second is held in suspense.
    sims.next_bank(GOOD_CARD, "delayed", "delayed")
    first, second = topup(client, auth, 60_000), topup(client, auth, 60_000)
    for t in (first, second):
        sims.settle_bank(f"topup:{t['id']}", "approved")
    _after_query_delay(clock, ctx)
    assert resolve_pending(ctx) == 2
    got = {t["id"]: t for t in client.get("/v1/wallet/topups", headers=auth).json()["items"]}
    assert got[first["id"]]["state"] == "confirmed"
    assert (got[second["id"]]["state"], got[second["id"]]["reason"],
            got[second["id"]]["held_in_suspense"]) == ("failed", "balance_cap_exceeded", True)
    assert balance(ctx, sub) == 60_000
    moved = ctx.ledger.transfer(f"topup:{second['id']}")
    assert moved is not None
    assert moved.credit_account_id == system_account(ctx.ledger, Code.SUSPENSE).id
    assert system_account(ctx.ledger, Code.SUSPENSE).balance == 60_000


def test_bad_requests_are_problems(client: TestClient, ctx: Context) -> None:
    _, auth = wallet(ctx)
    for body, status, code in (
            ({"source": "card", "amount_fen": 100}, 422, "no_default_card"),
            ({"source": "card", "amount_fen": 0}, 422, "validation_error"),
            ({"source": "card", "amount_fen": 100, "currency": "USD"}, 422, "validation_error"),
            ({"source": "cash", "amount_fen": 100}, 422, "validation_error"),
            ({"source": "card", "amount_fen": 100, "card_id": "card_x"}, 404,
             "card_not_found")):
        r = client.post("/v1/wallet/topups", json=body, headers=idem(**auth))
        assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert client.get("/v1/wallet/topups/tu_nope", headers=auth).status_code == 404
    r = client.get("/v1/wallet/topups", params={"cursor": "garbage"}, headers=auth)
    assert r.status_code == 422 and r.json()["code"] == "cursor_invalid"


def test_pages_and_other_subscribers(client: TestClient, ctx: Context, clock: ManualClock
                                     ) -> None:
    _sub, auth, _ = _setup(client, ctx)
    made = []
    for i in range(5):
        made.append(topup(client, auth, 100 + i)["id"])
        clock.advance(1)
    seen, cursor = [], None
    while True:
        page = client.get("/v1/wallet/topups", params={"limit": 2, **(
            {"cursor": cursor} if cursor else {})}, headers=auth).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]
    _, other = wallet(ctx)
    assert client.get(f"/v1/wallet/topups/{made[0]}", headers=other).status_code == 404
    assert client.get("/v1/wallet/topups", headers=other).json()["items"] == []


def test_operators_see_and_resolve_pending_operations(
        client: TestClient, ctx: Context, sims: Sims, db_url: str) -> None:
    sub, auth, _ = _setup(client, ctx)
    sims.next_bank(GOOD_CARD, "delayed")
    t = topup(client, auth, 2_500)
    r = client.get("/v1/operator/funding/pending", headers=OPERATOR)
    assert [p["reference"] for p in r.json()["items"]] == [f"topup:{t['id']}"]
    assert client.get("/v1/operator/funding/pending").status_code == 401

    runner = CliRunner()
    out = runner.invoke(app, ["funding", "pending", "--database-url", db_url],
                        env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert f"topup:{t['id']}" in out.output and "25.00" in out.output
    sims.settle_bank(f"topup:{t['id']}", "approved")
    out = runner.invoke(app, ["funding", "resolve", "--all", "--database-url", db_url,
                              "--bank-url", sims.bank_url])
    assert out.exit_code == 0, out.output
    assert "settled 1; 0 still pending" in out.output
    assert balance(ctx, sub) == 2_500
    r = client.post("/v1/operator/funding/resolve", headers=idem(**OPERATOR))
    assert r.status_code == 200 and r.json() == {"settled": 0, "still_pending": 0}
