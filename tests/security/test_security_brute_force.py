"""Guessing a PIN or a voucher secret, on both databases: the lock comes after the configured
number of failures (``settings.pin_max_failures``; five voucher failures in 24 hours), is
reported with its code, and no money moves while guessing or while locked.

The per-channel basics are tested already: tests/funding/test_p2p.py
(test_wrong_pin_is_refused_and_counted), tests/subscribers/test_sessions.py
(test_five_wrong_pins_lock_login_for_thirty_minutes), tests/funding/test_vouchers.py
(test_five_wrong_secrets_lock_the_wallet_for_a_day). Here an attacker spreads the guesses
over every channel that takes the PIN (transfer, payment confirmation, withdrawal, POS tap
above the no-PIN limit, login): they share one counter, so spreading buys nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from cash_helpers import (  # type: ignore[import-not-found]
    OPERATOR,
    PIN,
    client,
    clock,
    ctx,
    idem,
    settings,
)
from fastapi.testclient import TestClient
from security_world import (  # type: ignore[import-not-found]
    assert_problem,
    build_world,
    card_sim,
    counts,
    send,
)

from paycell.clock import ManualClock
from paycell.context import Context

__all__ = ["client", "clock", "ctx", "settings"]  # fixtures, imported for pytest
WRONG = "862514"


def _balance(ctx: Context, account_id: int) -> int:
    return ctx.ledger.account(account_id).balance


def test_pin_guesses_over_every_channel_share_one_lock(client: TestClient, ctx: Context,
                                                       clock: ManualClock) -> None:
    world = build_world(client, ctx)
    a, b = world.a, world.b
    auth = world.parties["A"].signer("GET", "/", b"")
    r = send(client, world.parties["M1"].signer, "POST", "/v1/payments", {
        "out_trade_no": "GUESS-1", "amount_fen": 800, "subject": "x", "payer_msisdn": a.msisdn,
        "expires_in_s": 7200})
    assert r.status_code == 201, r.text
    trade_no = r.json()["trade_no"]
    pos = world.pos["T1"]
    card = card_sim(world, "A")
    big = ctx.settings.onsite_no_pin_limit_fen + 100
    tries = ctx.settings.pin_max_failures
    assert tries == 5

    def transfer(pin: str) -> Any:
        return client.post("/v1/wallet/transfers", headers={**auth, **idem()},
                           json={"to_msisdn": b.msisdn, "amount_fen": 100, "pin": pin})

    def confirm(pin: str) -> Any:
        return client.post(f"/v1/wallet/payments/{trade_no}/confirm",
                           headers={**auth, **idem()}, json={"pin": pin})

    def withdraw(pin: str) -> Any:
        return client.post("/v1/wallet/withdrawals", headers={**auth, **idem()},
                           json={"amount_fen": 100, "pin": pin,
                                 "card_id": world.parties["A"].ids["card_id"]})

    def login(pin: str) -> Any:
        return client.post("/v1/wallet/login", headers=idem(),
                           json={"msisdn": a.msisdn, "pin": pin})

    def tap(pin: str) -> Any:
        stan = pos.next_stan()
        r = client.post("/v1/terminal/authorisations", json=pos.message(card, big, stan, pin),
                        auth=pos.auth)
        assert r.status_code == 200, r.text
        return r.json()

    before = counts(ctx)
    a_before, b_before = _balance(ctx, a.wallet_account_id), _balance(ctx, b.wallet_account_id)
    left = [tries - 1 - i for i in range(tries - 1)]
    for guess, remaining in zip((transfer, confirm, withdraw, login), left, strict=True):
        body = assert_problem(guess(WRONG), 401, 403)
        assert body["code"] in ("pin_invalid", "login_failed", "credentials_invalid"), body
        assert body.get("remaining_tries") == remaining, (guess.__name__, body)
    # The fifth guess, at the till, locks: a decline (75, PIN tries exceeded), not an error.
    declined = tap(WRONG)
    assert (declined["approved"], declined["reason"], declined["response_code"]) == (
        False, "pin_locked", "75"), declined
    # Locked now, on every channel, even with the right PIN.
    for attempt in (transfer, confirm, withdraw, login):
        body = assert_problem(attempt(PIN), 403)
        assert body["code"] == "pin_locked" and body.get("locked_until"), body
    locked = tap(PIN)
    assert (locked["approved"], locked["reason"], locked["response_code"]) == (
        False, "pin_locked", "75"), locked
    assert counts(ctx) == before
    assert (_balance(ctx, a.wallet_account_id), _balance(ctx, b.wallet_account_id)) == (
        a_before, b_before)
    r = client.get(f"/v1/wallet/payments/{trade_no}", headers=auth)
    assert r.status_code == 200 and "waiting" in r.text, r.text
    # The lock ends; the right PIN then pays exactly once.
    clock.advance(minutes=31)
    r = confirm(PIN)
    assert r.status_code == 200 and "paid" in r.text, r.text
    assert counts(ctx)["ledger_transfers"] == before["ledger_transfers"] + 1


def test_voucher_secret_guesses_lock_and_move_nothing(client: TestClient,
                                                      ctx: Context) -> None:
    from cash_helpers import wallet  # type: ignore[import-not-found]

    r = client.post("/v1/operator/voucher-batches", headers=idem(**OPERATOR),
                    json={"face_value_fen": 5_000, "count": 1, "expires_on": "2026-12-31"})
    assert r.status_code == 201, r.text
    card = r.json()["cards"][0]
    sub, auth = wallet(ctx)
    before = counts(ctx)

    def redeem(secret: str) -> Any:
        return client.post("/v1/wallet/vouchers/redeem", headers={**auth, **idem()},
                           json={"card_number": card["card_number"], "secret": secret})

    guesses = [f"{n:018d}" for n in range(1, 7)]
    guesses = [g for g in guesses if g != card["secret"]][:5]
    for n, guess in enumerate(guesses[:4]):
        body = assert_problem(redeem(guess), 403)
        assert (body["code"], body["attempts_left"]) == ("voucher_invalid", 4 - n), body
    body = assert_problem(redeem(guesses[4]), 403)
    assert body["code"] == "voucher_redemption_locked" and body.get("locked_until"), body
    body = assert_problem(redeem(card["secret"]), 403)
    assert body["code"] == "voucher_redemption_locked"
    # Guessing with a fresh Idempotency-Key each time, or many at once, changes nothing.
    for _ in range(3):
        assert assert_problem(redeem(uuid.uuid4().int.__str__()[:18]), 403, 422)["code"] in (
            "voucher_redemption_locked", "voucher_format_invalid")
    assert counts(ctx) == before and _balance(ctx, sub.wallet_account_id) == 0
