"""P2P transfers over HTTP, on both databases: to a registered wallet, to a number without
one (SMS, sign-up, claim; or back to the sender after 7 days), PIN, idempotency, states."""

from __future__ import annotations

from typing import Any

import pytest
from cash_helpers import (  # type: ignore[import-not-found]
    PIN,
    balance,
    client,
    clock,
    ctx,
    fund,
    idem,
    msisdn,
    settings,
    wallet,
)
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from paycell.clock import ManualClock
from paycell.context import Context
from paycell.funding import p2p, p2p_send
from paycell.gateways.sms import RecordingSms
from paycell.ledger.chart import TransferCode
from paycell.subscribers import hooks
from paycell.subscribers.lifecycle import freeze
from paycell.subscribers.limits import used_fen
from paycell.subscribers.service import get_subscriber, open_account

__all__ = ["client", "clock", "ctx", "settings"]  # fixtures, imported for pytest
TRANSFERS = "/v1/wallet/transfers"
WEEK_S = 7 * 86_400


def send(client: TestClient, auth: dict[str, str], to: str, amount: int, pin: str = PIN,
         note: str | None = None, **headers: str) -> Any:
    body: dict[str, Any] = {"to_msisdn": to, "amount_fen": amount, "pin": pin}
    if note is not None:
        body["note"] = note
    return client.post(TRANSFERS, json=body, headers={**auth, **(headers or idem())})


def listed(client: TestClient, auth: dict[str, str]) -> list[tuple[str, str, int, str]]:
    r = client.get(TRANSFERS, headers=auth)
    assert r.status_code == 200, r.text
    return [(t["direction"], t["counterparty_msisdn"], t["amount_fen"], t["state"])
            for t in r.json()["items"]]


def sms(ctx: Context) -> RecordingSms:
    assert isinstance(ctx.sms, RecordingSms)
    return ctx.sms


def test_to_a_registered_wallet(client: TestClient, ctx: Context) -> None:
    a, a_auth = wallet(ctx)
    b, b_auth = wallet(ctx)
    _, c_auth = wallet(ctx)
    fund(ctx, a, 10_000)
    r = send(client, a_auth, b.msisdn.removeprefix("+86"), 3_000, note="lunch")
    assert r.status_code == 201, r.text
    assert (r.json()["state"], r.json()["direction"], r.json()["note"]) == (
        "completed", "sent", "lunch")
    assert (balance(ctx, a), balance(ctx, b)) == (7_000, 3_000)
    assert listed(client, a_auth) == [("sent", b.msisdn, 3_000, "completed")]
    assert listed(client, b_auth) == [("received", a.msisdn, 3_000, "completed")]
    assert listed(client, c_auth) == []  # a third wallet sees none of it
    ref = p2p.list_transfers(ctx, a.id)[0].ref
    t = ctx.ledger.transfer(f"p2p:{ref}")
    assert t is not None and t.code == TransferCode.P2P and not t.flags
    with ctx.engine.connect() as c:
        assert used_fen(c, a.id, ctx.clock.now_us()) == (3_000, 3_000)


def test_same_idempotency_key_sends_once(client: TestClient, ctx: Context) -> None:
    a, a_auth = wallet(ctx)
    b, _ = wallet(ctx)
    fund(ctx, a, 10_000)
    headers = idem()
    first = send(client, a_auth, b.msisdn, 2_500, **headers)
    second = send(client, a_auth, b.msisdn, 2_500, **headers)
    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true" and second.json() == first.json()
    assert (balance(ctx, a), balance(ctx, b)) == (7_500, 2_500)
    # The same key for another request is refused, not applied.
    third = send(client, a_auth, b.msisdn, 99, **headers)
    assert third.status_code == 422 and third.json()["code"] == "idempotency_key_reused"
    # The service itself is idempotent on the key (a retry re-run after a crash).
    again = p2p_send.send_transfer(ctx, a, b.msisdn, 2_500, PIN, request_key=headers[
        "Idempotency-Key"])
    assert again.id == first.json()["id"] and balance(ctx, a) == 7_500


def test_wrong_pin_is_refused_and_counted(client: TestClient, ctx: Context) -> None:
    a, a_auth = wallet(ctx)
    b, _ = wallet(ctx)
    fund(ctx, a, 10_000)
    for tries in (4, 3, 2, 1):
        r = send(client, a_auth, b.msisdn, 100, pin="111222")
        assert r.status_code == 403 and r.json()["code"] == "pin_invalid", r.text
        assert r.json()["remaining_tries"] == tries
    r = send(client, a_auth, b.msisdn, 100, pin="111222")
    assert r.status_code == 403 and r.json()["code"] == "pin_locked"
    r = send(client, a_auth, b.msisdn, 100)  # the right PIN, but locked
    assert r.json()["code"] == "pin_locked"
    assert (balance(ctx, a), balance(ctx, b)) == (10_000, 0)
    assert listed(client, a_auth) == []


def test_to_an_unregistered_number_then_claimed(client: TestClient, ctx: Context,
                                               clock: ManualClock) -> None:
    a, a_auth = wallet(ctx)
    fund(ctx, a, 50_000)
    newcomer = msisdn()
    r = send(client, a_auth, newcomer, 12_000, note="welcome")
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "pending_claim" and r.json()["claim_expires_at"]
    wallet_a = ctx.ledger.account(a.wallet_account_id)
    assert (wallet_a.balance, wallet_a.available) == (50_000, 38_000)  # held, not gone
    text = sms(ctx).last_to(newcomer)
    assert text is not None and "120.00 CNY" in text and a.msisdn[-4:] in text
    ref = p2p.list_transfers(ctx, a.id)[0].ref
    hold = ctx.ledger.hold(f"p2p:{ref}")
    assert hold is not None and hold.status == "pending"

    clock.advance(days=6)
    b = open_account(ctx, newcomer, PIN)  # opening the wallet delivers what waited for it
    assert p2p.run_p2p_jobs(ctx) == 0  # so the worker finds nothing left to do
    assert (balance(ctx, a), balance(ctx, b)) == (38_000, 12_000)
    hold = ctx.ledger.hold(f"p2p:{ref}")
    assert hold is not None and hold.status == "posted"
    assert listed(client, a_auth) == [("sent", newcomer, 12_000, "claimed")]
    clock.advance(days=2)  # the old hold's timeout passes: nothing comes back
    assert p2p.run_p2p_jobs(ctx) == 0 and ctx.ledger.expire_holds() == 0
    assert balance(ctx, a) == 38_000


def test_claimed_at_first_look_after_sign_up(client: TestClient, ctx: Context) -> None:
    a, a_auth = wallet(ctx)
    fund(ctx, a, 50_000)
    newcomer = msisdn()
    for amount in (1_000, 2_000):
        assert send(client, a_auth, newcomer, amount).status_code == 201
    # The newcomer signs up and logs in through the wallet API.
    r = client.post("/v1/wallet/signup", json={"msisdn": newcomer, "pin": PIN}, headers=idem())
    assert r.status_code == 201, r.text
    r = client.post("/v1/wallet/login", json={"msisdn": newcomer, "pin": PIN}, headers=idem())
    assert r.status_code == 200, r.text
    b_auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
    b = get_subscriber(ctx, r.json()["subscriber_id"])
    # Signing up delivered what waited for the number.
    assert balance(ctx, b) == 3_000
    assert listed(client, b_auth) == [("received", a.msisdn, 2_000, "claimed"),
                                      ("received", a.msisdn, 1_000, "claimed")]
    assert balance(ctx, b) == 3_000


def test_unclaimed_goes_back_after_seven_days(client: TestClient, ctx: Context,
                                             clock: ManualClock, engine: Engine) -> None:
    a, a_auth = wallet(ctx)
    fund(ctx, a, 50_000)
    nobody = msisdn()
    assert send(client, a_auth, nobody, 20_000).status_code == 201
    with engine.connect() as c:
        assert used_fen(c, a.id, clock.now_us()) == (20_000, 20_000)
    clock.advance(seconds=WEEK_S - 1)
    assert p2p.run_p2p_jobs(ctx) == 0
    assert ctx.ledger.account(a.wallet_account_id).available == 30_000
    clock.advance(seconds=1)
    assert p2p.run_p2p_jobs(ctx) == 1  # expires the hold and settles the transfer
    assert p2p.run_p2p_jobs(ctx) == 0
    acct = ctx.ledger.account(a.wallet_account_id)
    assert (acct.balance, acct.available) == (50_000, 50_000)
    assert listed(client, a_auth) == [("sent", nobody, 20_000, "returned")]
    text = sms(ctx).last_to(a.msisdn)
    assert text is not None and "200.00 CNY" in text and "back" in text
    with engine.connect() as c:  # the sender's limits are given back, on the send's day
        assert used_fen(c, a.id, clock.now_us() - WEEK_S * 1_000_000) == (0, 0)
    # A late sign-up gets nothing.
    late, late_auth = wallet(ctx, nobody)
    assert listed(client, late_auth) == [] and balance(ctx, late) == 0


def test_expired_hold_released_by_the_ledger_first(client: TestClient, ctx: Context,
                                                   clock: ManualClock) -> None:
    a, a_auth = wallet(ctx)
    fund(ctx, a, 5_000)
    nobody = msisdn()
    assert send(client, a_auth, nobody, 5_000).status_code == 201
    clock.advance(seconds=WEEK_S)
    assert ctx.ledger.expire_holds() == 1  # the worker's expiry job ran first
    late, _ = wallet(ctx, nobody)
    assert p2p.claim_pending_transfers(ctx, late) == 0  # too late to claim
    assert p2p.return_expired_transfers(ctx) == 1
    assert (balance(ctx, a), balance(ctx, late)) == (5_000, 0)


def test_refusals(client: TestClient, ctx: Context) -> None:
    a, a_auth = wallet(ctx)
    b, b_auth = wallet(ctx)
    fund(ctx, a, 10_000)
    fund(ctx, b, 10_000)
    cases = [
        (a.msisdn, 100, 422, "p2p_to_self"),
        ("12345", 100, 422, "invalid_msisdn"),
        (b.msisdn, 0, 422, "validation_error"),
        (b.msisdn, 10_001, 409, "insufficient_balance"),
        (b.msisdn, 50_001, 409, "limit_exceeded"),  # tier 0: 500 CNY a transaction
    ]
    for to, amount, status, code in cases:
        r = send(client, a_auth, to, amount)
        assert (r.status_code, r.json()["code"]) == (status, code), r.text
    nobody = msisdn()
    r = send(client, a_auth, nobody, 10_001)
    assert r.json()["code"] == "insufficient_balance" and sms(ctx).last_to(nobody) is None
    assert (balance(ctx, a), balance(ctx, b)) == (10_000, 10_000)
    # A frozen wallet cannot send, but still receives.
    freeze(ctx, b.id, "test")
    r = send(client, a_auth, b.msisdn, 1_000)
    assert r.status_code == 201, r.text
    assert balance(ctx, b) == 11_000
    r = send(client, b_auth, a.msisdn, 100)
    assert r.status_code == 409 and r.json()["code"] == "subscriber_frozen", r.text
    assert (balance(ctx, a), balance(ctx, b)) == (9_000, 11_000)


def test_list_pages(client: TestClient, ctx: Context) -> None:
    a, a_auth = wallet(ctx)
    b, _ = wallet(ctx)
    fund(ctx, a, 10_000)
    for amount in (1, 2, 3):
        assert send(client, a_auth, b.msisdn, amount).status_code == 201
    page = client.get(f"{TRANSFERS}?limit=2", headers=a_auth).json()
    assert [t["amount_fen"] for t in page["items"]] == [3, 2] and page["next_cursor"]
    rest = client.get(f"{TRANSFERS}?cursor={page['next_cursor']}", headers=a_auth).json()
    assert [t["amount_fen"] for t in rest["items"]] == [1] and rest["next_cursor"] is None
    bad = client.get(f"{TRANSFERS}?cursor=nonsense", headers=a_auth)
    assert bad.status_code == 422 and bad.json()["code"] == "cursor_invalid"


def test_concurrent_claims_deliver_once(client: TestClient, ctx: Context,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    a, a_auth = wallet(ctx)
    fund(ctx, a, 9_000)
    newcomer = msisdn()
    assert send(client, a_auth, newcomer, 9_000).status_code == 201
    # Open the wallet without the after-open claim, then let three claimers race.
    monkeypatch.setattr(hooks, "after_open", [])
    b = open_account(ctx, newcomer, PIN)
    start = threading.Barrier(3)
    counts: list[int] = []

    def claim() -> None:
        start.wait()
        counts.append(p2p.claim_pending_transfers(ctx, b))

    threads = [threading.Thread(target=claim) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(counts) == [0, 0, 1]
    assert (balance(ctx, a), balance(ctx, b)) == (0, 9_000)


def test_the_worker_runs_the_p2p_job(client: TestClient, ctx: Context,
                                     clock: ManualClock) -> None:
    from paycell.worker import Worker

    a, a_auth = wallet(ctx)
    fund(ctx, a, 1_000)
    assert send(client, a_auth, msisdn(), 1_000).status_code == 201
    clock.advance(seconds=WEEK_S)
    worker = Worker(ctx.ledger, ctx.settings, ctx=ctx)
    ran = worker.run_once()
    assert (ran["expire_holds"], ran["p2p"]) == (1, 1)
    assert balance(ctx, a) == 1_000
