"""Top-ups charged to the phone bill over real HTTP to the loopback carrier, on both
databases: prepaid airtime and postpaid bill, refusals, the monthly cap (also under
concurrency), a carrier that times out, and retries with the same key."""

from __future__ import annotations

import threading
from typing import Any

from fastapi.testclient import TestClient
from funding_helpers import (  # type: ignore[import-not-found]
    Sims,
    balance,
    client,
    clock,
    ctx,
    idem,
    settings,
    sims,
    topup,
    wallet,
)

from paycell.clock import ManualClock
from paycell.context import Context
from paycell.funding.jobs import resolve_pending
from paycell.ledger.chart import Code, TransferCode, system_account

__all__ = ["client", "clock", "ctx", "settings", "sims"]


def _named(ctx: Context) -> tuple[Any, dict[str, str]]:
    """A tier 1 wallet (balance cap 10,000.00 CNY), so that only the phone-bill cap bites."""
    return wallet(ctx, name="Wang Fang", id_number="11010519491231002X")


def test_prepaid_airtime_pays_for_a_topup(client: TestClient, ctx: Context,
                                          sims: Sims) -> None:
    sub, auth = wallet(ctx)
    sims.line(sub.msisdn, account_type="prepaid", airtime_fen=10_000)
    t = topup(client, auth, 3_000, source="phone_bill")
    assert (t["state"], t["msisdn"], t["partner"]) == ("confirmed", sub.msisdn, "cmcc")
    assert balance(ctx, sub) == 3_000
    assert sims.line(sub.msisdn)["airtime_fen"] == 7_000
    moved = ctx.ledger.transfer(f"topup:{t['id']}")
    receivable = system_account(ctx.ledger, Code.CARRIER_RECEIVABLE, "cmcc")
    assert moved is not None and moved.code == TransferCode.TOPUP_CARRIER
    assert (moved.debit_account_id, moved.credit_account_id) == (receivable.id,
                                                                 sub.wallet_account_id)
    t2 = topup(client, auth, 7_001, source="phone_bill")
    assert (t2["state"], t2["reason"]) == ("failed", "insufficient_airtime")
    assert balance(ctx, sub) == 3_000


def test_postpaid_adds_to_the_bill_up_to_its_limit(client: TestClient, ctx: Context,
                                                   sims: Sims) -> None:
    sub, auth = wallet(ctx)
    sims.line(sub.msisdn, account_type="postpaid", credit_limit_fen=5_000)
    assert topup(client, auth, 4_000, source="phone_bill")["state"] == "confirmed"
    line = sims.line(sub.msisdn)
    assert line["bill_fen"] == 4_000 and len(line["bill_lines"]) == 1
    refused = topup(client, auth, 1_001, source="phone_bill")
    assert (refused["state"], refused["reason"]) == ("failed", "credit_limit")
    sims.line(sub.msisdn, suspended=True)
    refused = topup(client, auth, 100, source="phone_bill")
    assert refused["reason"] == "account_suspended"
    assert balance(ctx, sub) == 4_000


def test_the_monthly_cap(client: TestClient, ctx: Context, sims: Sims,
                         clock: ManualClock) -> None:
    sub, auth = _named(ctx)
    sims.line(sub.msisdn, account_type="postpaid", credit_limit_fen=1_000_000)
    assert topup(client, auth, 30_000, source="phone_bill")["state"] == "confirmed"
    # A refused charge gives its share of the cap back.
    sims.next_carrier(sub.msisdn, "reject:fraud_suspected")
    assert topup(client, auth, 20_000, source="phone_bill")["state"] == "failed"
    assert topup(client, auth, 20_000, source="phone_bill")["state"] == "confirmed"
    r = client.post("/v1/wallet/topups", json={"source": "phone_bill", "amount_fen": 1},
                    headers=idem(**auth))
    assert r.status_code == 409, r.text
    assert (r.json()["code"], r.json()["cap_fen"], r.json()["remaining_fen"]) == (
        "phone_bill_cap_exceeded", 50_000, 0)
    page = client.get("/v1/wallet/topups", headers=auth).json()
    assert (page["phone_bill_used_fen"], page["phone_bill_cap_fen"]) == (50_000, 50_000)
    assert sims.line(sub.msisdn)["bill_fen"] == 50_000
    clock.advance(days=31)  # a new month (China Standard Time)
    assert topup(client, auth, 50_000, source="phone_bill")["state"] == "confirmed"
    assert balance(ctx, sub) == 100_000


def test_concurrent_topups_cannot_pass_the_cap_together(client: TestClient, ctx: Context,
                                                        sims: Sims) -> None:
    sub, auth = _named(ctx)
    sims.line(sub.msisdn, account_type="postpaid")
    barrier = threading.Barrier(2)
    answers: list[Any] = []

    def go() -> None:
        barrier.wait()
        answers.append(client.post("/v1/wallet/topups",
                                   json={"source": "phone_bill", "amount_fen": 30_000},
                                   headers=idem(**auth)))

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = sorted((a.status_code, a.json().get("code") or a.json()["state"]) for a in answers)
    assert got == [(201, "confirmed"), (409, "phone_bill_cap_exceeded")], got
    assert balance(ctx, sub) == 30_000 and sims.line(sub.msisdn)["bill_fen"] == 30_000


def test_carrier_times_out_then_the_job_resolves(client: TestClient, ctx: Context,
                                                 sims: Sims, clock: ManualClock) -> None:
    sub, auth = wallet(ctx)
    sims.line(sub.msisdn, account_type="prepaid", airtime_fen=5_000)
    sims.next_carrier(sub.msisdn, "timeout", "timeout")
    ok = topup(client, auth, 2_000, source="phone_bill")
    too_much = topup(client, auth, 4_000, source="phone_bill")  # airtime left: 3,000
    assert ok["state"] == too_much["state"] == "pending"
    assert balance(ctx, sub) == 0
    clock.advance(ctx.settings.funding_query_after_s + 1)
    assert resolve_pending(ctx) == 2
    got = {t["id"]: (t["state"], t["reason"]) for t in
           client.get("/v1/wallet/topups", headers=auth).json()["items"]}
    assert got == {ok["id"]: ("confirmed", None),
                   too_much["id"]: ("failed", "insufficient_airtime")}
    assert balance(ctx, sub) == 2_000
    # The failed one gave its share of the month's cap back.
    assert client.get("/v1/wallet/topups", headers=auth).json()["phone_bill_used_fen"] == 2_000


def test_the_same_key_charges_once(client: TestClient, ctx: Context, sims: Sims) -> None:
    sub, auth = wallet(ctx)
    sims.line(sub.msisdn, account_type="prepaid", airtime_fen=10_000)
    headers = idem(**auth)
    body = {"source": "phone_bill", "amount_fen": 1_500}
    answers = [client.post("/v1/wallet/topups", json=body, headers=headers) for _ in range(3)]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sims.line(sub.msisdn)["airtime_fen"] == 8_500
    assert balance(ctx, sub) == 1_500
