"""Withdrawals to a bound card over real HTTP to the loopback bank, on both databases:
PIN, fee, tier limits, holds posted on the bank's approval and voided on its refusal (usage
given back), a bank that times out, two concurrent withdrawals that would overdraw, retries,
and the close payout to the default card."""

from __future__ import annotations

import threading
from fractions import Fraction
from typing import Any

from fastapi.testclient import TestClient
from funding_helpers import (  # type: ignore[import-not-found]
    GOOD_CARD,
    PIN,
    Sims,
    balance,
    bind_card,
    client,
    clock,
    ctx,
    fund,
    idem,
    settings,
    sims,
    wallet,
    withdraw,
)
from hypothesis import given
from hypothesis import strategies as st

from paycell.clock import ManualClock
from paycell.context import Context
from paycell.funding.fees import FeeRule, withdrawal_fee
from paycell.funding.jobs import resolve_pending
from paycell.ledger.chart import Code, TransferCode, system_account
from paycell.subscribers.lifecycle import freeze
from paycell.subscribers.limits import used_fen

__all__ = ["client", "clock", "ctx", "settings", "sims"]

RULE = FeeRule(rate_bp=10, min_fen=100, max_fen=2_500)


# -- the fee rule (pure) -----------------------------------------------------------------------
@given(st.integers(min_value=1, max_value=10**13))
def test_the_fee_is_whole_fen_within_bounds(amount: int) -> None:
    fee = withdrawal_fee(amount, RULE)
    assert isinstance(fee, int) and RULE.min_fen <= fee <= RULE.max_fen
    exact = Fraction(amount * RULE.rate_bp, 10_000)  # the exact fee, for comparison
    if RULE.min_fen < fee < RULE.max_fen:
        assert abs(fee - exact) <= 0.5


@given(st.integers(min_value=1, max_value=10**12), st.integers(min_value=0, max_value=10**9),
       st.integers(0, 200), st.integers(0, 10_000), st.integers(0, 10_000))
def test_the_fee_never_decreases_with_the_amount(amount: int, more: int, bp: int, lo: int,
                                                 span: int) -> None:
    rule = FeeRule(bp, lo, lo + span)
    assert withdrawal_fee(amount, rule) <= withdrawal_fee(amount + more, rule)


def test_the_fee_examples() -> None:
    assert [withdrawal_fee(a, RULE) for a in (1, 50_000, 100_000, 500_000, 5_000_000)] == [
        100, 100, 100, 500, 2_500]
    assert withdrawal_fee(124_950, RULE) == 125  # 124.95 rounds half up


# -- over HTTP -------------------------------------------------------------------------------
def _ready(client: TestClient, ctx: Context, fen: int = 60_000, pan: str = GOOD_CARD
           ) -> tuple[Any, dict[str, str], dict[str, Any]]:
    sub, auth = wallet(ctx)
    fund(ctx, sub, fen)
    return sub, auth, bind_card(client, ctx, sub, auth, pan)


def _used_today(ctx: Context, sub: Any) -> int:
    with ctx.engine.connect() as conn:
        return used_fen(conn, sub.id, ctx.clock.now_us())[0]


def test_a_withdrawal_pays_the_card_and_the_fee(client: TestClient, ctx: Context,
                                                sims: Sims) -> None:
    sub, auth, card = _ready(client, ctx)
    before = sims.card(GOOD_CARD)["balance_fen"]
    quote = client.get("/v1/wallet/withdrawals/fee", params={"amount_fen": 30_000},
                       headers=auth).json()
    assert quote == {"amount_fen": 30_000, "fee_fen": 100, "total_fen": 30_100,
                     "currency": "CNY"}
    w = withdraw(client, auth, 30_000)
    assert (w["state"], w["fee_fen"], w["total_fen"], w["card_id"], w["kind"]) == (
        "confirmed", 100, 30_100, card["id"], "withdrawal")
    assert balance(ctx, sub) == 60_000 - 30_100
    assert ctx.ledger.account(sub.wallet_account_id).debits_pending == 0
    assert sims.card(GOOD_CARD)["balance_fen"] == before + 30_000
    assert system_account(ctx.ledger, Code.REVENUE_FEES).balance == 100
    hold = ctx.ledger.transfer(f"withdrawal:{w['id']}")
    assert hold is not None and hold.code == TransferCode.WITHDRAWAL
    assert ctx.ledger.hold(f"withdrawal:{w['id']}:fee").status == "posted"  # type: ignore
    assert client.get(f"/v1/wallet/withdrawals/{w['id']}", headers=auth).json() == w
    assert _used_today(ctx, sub) == 30_100


def test_pin_limits_and_state_refuse_with_nothing_moved(client: TestClient,
                                                        ctx: Context) -> None:
    sub, auth, _ = _ready(client, ctx, fen=40_000)
    for body, status, code in (
            ({"amount_fen": 1_000, "pin": "111111"}, 403, "pin_invalid"),
            ({"amount_fen": 50_001, "pin": PIN}, 409, "limit_exceeded"),  # tier 0: 500.00
            ({"amount_fen": 39_950, "pin": PIN}, 409, "insufficient_balance"),  # + 1.00 fee
            ({"amount_fen": 100, "pin": PIN, "card_id": "card_nope"}, 404, "card_not_found")):
        r = client.post("/v1/wallet/withdrawals", json=body, headers=idem(**auth))
        assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert balance(ctx, sub) == 40_000 and _used_today(ctx, sub) == 0
    assert client.get("/v1/wallet/withdrawals", headers=auth).json()["items"] == []
    freeze(ctx, sub.id, "suspicious")
    r = client.post("/v1/wallet/withdrawals", json={"amount_fen": 100, "pin": PIN},
                    headers=idem(**auth))
    assert (r.status_code, r.json()["code"]) == (409, "subscriber_frozen")


def test_a_refused_withdrawal_releases_everything(client: TestClient, ctx: Context,
                                                  sims: Sims) -> None:
    sub, auth, _ = _ready(client, ctx)
    sims.card(GOOD_CARD, blocked=True)
    w = withdraw(client, auth, 20_000)
    assert (w["state"], w["reason"]) == ("failed", "card_blocked")
    wallet_acct = ctx.ledger.account(sub.wallet_account_id)
    assert (wallet_acct.balance, wallet_acct.debits_pending) == (60_000, 0)
    assert ctx.ledger.hold(f"withdrawal:{w['id']}").status == "voided"  # type: ignore
    assert ctx.ledger.hold(f"withdrawal:{w['id']}:fee").status == "voided"  # type: ignore
    assert _used_today(ctx, sub) == 0  # the day's limit is given back


def test_bank_times_out_then_the_job_resolves_both_ways(
        client: TestClient, ctx: Context, sims: Sims, clock: ManualClock) -> None:
    sub, auth, _ = _ready(client, ctx)
    sims.next_bank(GOOD_CARD, "timeout", "delayed")
    paid = withdraw(client, auth, 10_000)
    refused = withdraw(client, auth, 20_000)
    assert paid["state"] == refused["state"] == "pending"
    acct = ctx.ledger.account(sub.wallet_account_id)
    assert (acct.balance, acct.available) == (60_000, 60_000 - 10_100 - 20_100)
    # Money held for an unknown answer cannot be closed away.
    r = client.post("/v1/wallet/close", json={"pin": PIN}, headers=idem(**auth))
    assert r.status_code == 409 and r.json()["code"] == "account_has_pending_holds"
    sims.settle_bank(f"withdrawal:{refused['id']}", "rejected", "account_closed")
    clock.advance(ctx.settings.funding_query_after_s + 1)
    assert resolve_pending(ctx) == 2
    got = {w["id"]: (w["state"], w["reason"]) for w in
           client.get("/v1/wallet/withdrawals", headers=auth).json()["items"]}
    assert got == {paid["id"]: ("confirmed", None), refused["id"]: ("failed", "account_closed")}
    acct = ctx.ledger.account(sub.wallet_account_id)
    assert (acct.balance, acct.debits_pending) == (60_000 - 10_100, 0)
    assert _used_today(ctx, sub) == 10_100


def test_two_concurrent_withdrawals_cannot_overdraw(client: TestClient, ctx: Context) -> None:
    sub, auth, _ = _ready(client, ctx)  # 600.00; each asks 400.00 + 1.00 (the minimum fee)
    barrier = threading.Barrier(2)
    answers: list[Any] = []

    def go() -> None:
        barrier.wait()
        answers.append(client.post("/v1/wallet/withdrawals",
                                   json={"amount_fen": 40_000, "pin": PIN},
                                   headers=idem(**auth)))

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted((a.status_code, a.json().get("code") or a.json()["state"])
                   for a in answers)
    assert codes == [(201, "confirmed"), (409, "insufficient_balance")], codes
    assert balance(ctx, sub) == 60_000 - 40_100
    assert _used_today(ctx, sub) == 40_100  # the refused one counted nothing


def test_the_same_key_makes_one_withdrawal(client: TestClient, ctx: Context,
                                           sims: Sims) -> None:
    sub, auth, _ = _ready(client, ctx)
    before = sims.card(GOOD_CARD)["balance_fen"]
    headers = idem(**auth)
    answers = [client.post("/v1/wallet/withdrawals", json={"amount_fen": 5_000, "pin": PIN},
                           headers=headers) for _ in range(2)]
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].json() == answers[1].json()
    assert balance(ctx, sub) == 60_000 - 5_100
    assert sims.card(GOOD_CARD)["balance_fen"] == before + 5_000


def test_close_pays_the_balance_to_the_default_card(client: TestClient, ctx: Context,
                                                    sims: Sims) -> None:
    sub, auth, card = _ready(client, ctx, fen=43_210)
    before = sims.card(GOOD_CARD)["balance_fen"]
    r = client.post("/v1/wallet/close", json={"pin": PIN}, headers=idem(**auth))
    assert r.status_code == 200, r.text
    closed = r.json()
    assert (closed["state"], closed["paid_to"], closed["balance_fen"]) == (
        "closed", "payout", 43_210)
    assert sims.card(GOOD_CARD)["balance_fen"] == before + 43_210  # no fee
    w = ctx.ledger.transfer(f"withdrawal:{closed['reference']}")
    assert w is not None and w.code == TransferCode.CLOSE_PAYOUT and w.amount == 43_210
    assert ctx.ledger.account(sub.wallet_account_id).closed
    assert ctx.ledger.account(sub.wallet_account_id).balance == 0
    from paycell.funding.withdrawals import get_withdrawal

    payout = get_withdrawal(ctx, sub.id, closed["reference"])
    assert (payout.kind, payout.state, payout.card_id, payout.fee_fen) == (
        "close_payout", "confirmed", card["id"], 0)


def test_a_refused_close_payout_is_held_for_collection(
        client: TestClient, ctx: Context, sims: Sims, clock: ManualClock) -> None:
    sub, auth, _ = _ready(client, ctx, fen=9_999)
    sims.next_bank(GOOD_CARD, "delayed")
    r = client.post("/v1/wallet/close", json={"pin": PIN}, headers=idem(**auth))
    assert r.status_code == 200 and r.json()["paid_to"] == "payout"
    ref = r.json()["reference"]
    assert ctx.ledger.account(sub.wallet_account_id).closed  # closed while the bank thinks
    sims.settle_bank(f"withdrawal:{ref}", "rejected", "account_closed")
    clock.advance(ctx.settings.funding_query_after_s + 1)
    assert resolve_pending(ctx) == 1
    assert system_account(ctx.ledger, Code.UNCLAIMED).balance == 9_999
    assert system_account(ctx.ledger, Code.BANK_CLEARING, "icbc").balance == 0
