"""Recharge vouchers over HTTP, on both databases: generate, redeem once, lockout, expiry,
void; the pure rules with hypothesis; the CLI."""

from __future__ import annotations

import csv
import threading
from pathlib import Path
from typing import Any

from cash_helpers import (  # type: ignore[import-not-found]
    OPERATOR,
    balance,
    client,
    clock,
    ctx,
    fund,
    idem,
    settings,
    wallet,
)
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text
from typer.testing import CliRunner

from paycell.cli import app as cli_app
from paycell.clock import ManualClock
from paycell.context import Context
from paycell.errors import PaycellError
from paycell.funding import cash_rules as rules
from paycell.funding import vouchers
from paycell.funding.cash_tables import vouchers as vouchers_table
from paycell.ledger.chart import TransferCode

__all__ = ["client", "clock", "ctx", "settings"]  # fixtures, imported for pytest
BATCHES = "/v1/operator/voucher-batches"
REDEEM = "/v1/wallet/vouchers/redeem"


def make_batch(client: TestClient, count: int = 3, face: int = 5000,
               expires_on: str = "2026-12-31") -> dict[str, Any]:
    r = client.post(BATCHES, json={"face_value_fen": face, "count": count,
                                   "expires_on": expires_on}, headers=idem(**OPERATOR))
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def redeem(client: TestClient, auth: dict[str, str], card: dict[str, str],
           secret: str | None = None, **headers: str) -> Any:
    return client.post(REDEEM, json={"card_number": card["card_number"],
                                     "secret": secret or card["secret"]},
                       headers={**auth, **(headers or idem())})


def test_generate_then_redeem_exactly_once(client: TestClient, ctx: Context,
                                           engine: Engine) -> None:
    key = idem(**OPERATOR)
    body = {"face_value_fen": 5000, "count": 3, "expires_on": "2026-12-31"}
    r = client.post(BATCHES, json=body, headers=key)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["secrets_shown"] and len(made["cards"]) == 3
    card = made["cards"][0]
    assert len(card["card_number"]) == 16 and rules.luhn_ok(card["card_number"])
    assert len(card["secret"]) == 18 and card["secret"].isdigit()
    # Shown once: a replay has the batch but no secrets, and no secret is stored anywhere.
    again = client.post(BATCHES, json=body, headers=key)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["batch"]["id"] == made["batch"]["id"]
    assert again.json()["cards"] == [] and not again.json()["secrets_shown"]
    with engine.connect() as c:
        dump = " ".join(str(row) for t in ("vouchers", "idempotency_keys", "voucher_batches")
                        for row in c.execute(text(f"SELECT * FROM {t}")))
    assert not any(k["secret"] in dump for k in made["cards"])

    sub, auth = wallet(ctx)
    headers = idem()
    r = redeem(client, auth, card, **headers)
    assert r.status_code == 200, r.text
    assert r.json()["amount_fen"] == 5000 and balance(ctx, sub) == 5000
    t = ctx.ledger.transfer(f"voucher:{card['card_number']}")
    assert t is not None and t.code == TransferCode.TOPUP_VOUCHER
    # The same request replayed: the same answer, nothing moves.
    replay = redeem(client, auth, card, **headers)
    assert replay.json() == r.json() and replay.headers["Idempotent-Replayed"] == "true"
    # A second redemption (any wallet) is refused.
    other, other_auth = wallet(ctx)
    for who in (auth, other_auth):
        second = redeem(client, who, card)
        assert second.status_code == 409 and second.json()["code"] == "voucher_already_redeemed"
    assert balance(ctx, sub) == 5000 and balance(ctx, other) == 0

    s = client.get(f"{BATCHES}/{made['batch']['id']}", headers=OPERATOR).json()
    assert (s["issued_count"], s["issued_fen"]) == (3, 15000)
    assert (s["redeemed_count"], s["redeemed_fen"]) == (1, 5000)
    assert (s["unredeemed_count"], s["unredeemed_fen"], s["status"]) == (2, 10000, "active")
    listed = client.get(BATCHES, headers=OPERATOR).json()["items"]
    assert [b["id"] for b in listed] == [made["batch"]["id"]]


def test_two_concurrent_redemptions_of_one_card(client: TestClient, ctx: Context) -> None:
    card = make_batch(client, count=1)["cards"][0]
    subs = [wallet(ctx)[0] for _ in range(4)]
    start = threading.Barrier(len(subs))
    outcomes: list[str] = []

    def attempt(sub: Any) -> None:
        start.wait()
        try:
            vouchers.redeem_voucher(ctx, sub, card["card_number"], card["secret"])
            outcomes.append("ok")
        except PaycellError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=attempt, args=(s,)) for s in subs]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(outcomes) == ["ok"] + ["voucher_already_redeemed"] * 3
    assert sum(balance(ctx, s) for s in subs) == 5000


def test_five_wrong_secrets_lock_the_wallet_for_a_day(client: TestClient, ctx: Context,
                                                     clock: ManualClock) -> None:
    cards = make_batch(client, count=2)["cards"]
    sub, auth = wallet(ctx)
    wrong = "0" * 18 if cards[0]["secret"] != "0" * 18 else "1" * 18
    for left in (4, 3, 2):
        r = redeem(client, auth, cards[0], wrong)
        assert r.status_code == 403 and r.json()["code"] == "voucher_invalid"
        assert r.json()["attempts_left"] == left
        clock.advance(hours=1)
    # An unknown card number counts too, and is not told apart from a wrong secret.
    ghost = {"card_number": "1" * 15 + rules.luhn_check_digit("1" * 15), "secret": wrong}
    r = redeem(client, auth, ghost)
    assert (r.status_code, r.json()["code"], r.json()["attempts_left"]) == (
        403, "voucher_invalid", 1)
    r = redeem(client, auth, cards[0], wrong)
    assert r.status_code == 403 and r.json()["code"] == "voucher_redemption_locked"
    # Locked: even the right secret is refused, for this wallet only.
    r = redeem(client, auth, cards[0])
    assert r.json()["code"] == "voucher_redemption_locked" and balance(ctx, sub) == 0
    _, other_auth = wallet(ctx)
    assert redeem(client, other_auth, cards[1]).status_code == 200
    clock.advance(hours=23, minutes=59)
    assert redeem(client, auth, cards[0]).json()["code"] == "voucher_redemption_locked"
    clock.advance(minutes=1)
    r = redeem(client, auth, cards[0])
    assert r.status_code == 200, r.text
    assert balance(ctx, sub) == 5000
    # Typos are not guesses: they are refused without counting.
    bad = {"card_number": cards[0]["card_number"][:-1] + "x", "secret": "12"}
    r = redeem(client, auth, bad)
    assert r.status_code == 422 and r.json()["code"] == "voucher_format_invalid"


def test_failures_spread_over_more_than_a_day_do_not_lock(client: TestClient, ctx: Context,
                                                          clock: ManualClock) -> None:
    card = make_batch(client, count=1)["cards"][0]
    _, auth = wallet(ctx)
    wrong = "9" * 18 if card["secret"] != "9" * 18 else "8" * 18
    for _ in range(8):
        r = redeem(client, auth, card, wrong)
        assert r.json()["code"] == "voucher_invalid"
        clock.advance(hours=7)  # never five within 24 hours
    assert redeem(client, auth, card).status_code == 200


def test_expired_and_voided_cards(client: TestClient, ctx: Context,
                                  clock: ManualClock) -> None:
    # The clock starts at 2026-01-01 00:00 UTC = 08:00 Beijing on 1 January.
    soon = make_batch(client, count=2, expires_on="2026-01-01")
    other = make_batch(client, count=2)
    sub, auth = wallet(ctx)
    clock.advance(hours=15, minutes=59)  # 23:59 Beijing: still valid
    assert redeem(client, auth, soon["cards"][0]).status_code == 200
    clock.advance(minutes=1)
    r = redeem(client, auth, soon["cards"][1])
    assert r.status_code == 409 and r.json()["code"] == "voucher_expired"
    # Only the holder of the secret learns the card's state.
    r = redeem(client, auth, soon["cards"][1], "1" * 18)
    assert r.json()["code"] == "voucher_invalid"

    batch_id = other["batch"]["id"]
    assert redeem(client, auth, other["cards"][0]).status_code == 200
    r = client.post(f"{BATCHES}/{batch_id}/void", headers=idem(**OPERATOR))
    assert r.status_code == 200 and r.json()["state"] == "voided"
    r = client.post(f"{BATCHES}/{batch_id}/void", headers=idem(**OPERATOR))
    assert r.status_code == 200  # voiding again changes nothing
    r = redeem(client, auth, other["cards"][1])
    assert r.status_code == 409 and r.json()["code"] == "voucher_void"
    s = client.get(f"{BATCHES}/{batch_id}", headers=OPERATOR).json()
    assert (s["status"], s["redeemed_count"], s["unredeemed_count"]) == ("voided", 1, 1)
    assert balance(ctx, sub) == 10000
    assert client.get(f"{BATCHES}/999", headers=OPERATOR).json()["code"] == (
        "voucher_batch_not_found")


def test_balance_cap_refuses_and_keeps_the_card(client: TestClient, ctx: Context,
                                                engine: Engine) -> None:
    card = make_batch(client, count=1)["cards"][0]
    sub, auth = wallet(ctx)
    fund(ctx, sub, 100_000 - 4999)  # tier 0: balance cap 1,000 CNY
    r = redeem(client, auth, card)
    assert r.status_code == 409 and r.json()["code"] == "balance_cap_exceeded"
    with engine.connect() as c:
        state = c.execute(select(vouchers_table.c.state).where(
            vouchers_table.c.card_number == card["card_number"])).scalar_one()
    assert state == "issued" and ctx.ledger.transfer(f"voucher:{card['card_number']}") is None


def test_bad_batches_and_auth(client: TestClient) -> None:
    for body, code in (
        ({"face_value_fen": 0, "count": 1, "expires_on": "2026-12-31"}, "validation_error"),
        ({"face_value_fen": 100, "count": 1, "expires_on": "2025-12-31"},
         "voucher_batch_invalid"),
        ({"face_value_fen": 100, "count": 200_000, "expires_on": "2026-12-31"},
         "voucher_batch_invalid"),
    ):
        r = client.post(BATCHES, json=body, headers=idem(**OPERATOR))
        assert r.status_code == 422 and r.json()["code"] == code, r.text
    r = client.post(BATCHES, json={"face_value_fen": 1, "count": 1, "expires_on": "2026-12-31"},
                    headers=idem())
    assert r.status_code == 401
    r = client.post(REDEEM, json={"card_number": "1", "secret": "2"}, headers=idem())
    assert r.status_code == 401 and r.json()["code"] == "authentication_required"


def test_cli_writes_the_secrets_to_a_private_csv(client: TestClient, ctx: Context,
                                                 db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "cards.csv"
    args = ["vouchers", "generate", "--face", "50.00", "--count", "1200", "--out", str(out),
            "--expires", "2099-12-31", "--database-url", db_url]
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o077 == 0
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1200 and len({r["card_number"] for r in rows}) == 1200
    assert rows[0]["face_value"] == "50.00"
    # An existing file is never overwritten (it would lose another batch's secrets).
    assert CliRunner().invoke(cli_app, args).exit_code == 1
    _, auth = wallet(ctx)
    assert redeem(client, auth, rows[7]).status_code == 200
    batch_id = rows[0]["batch_id"]
    summary = CliRunner().invoke(cli_app, ["vouchers", "batch", batch_id,
                                           "--database-url", db_url])
    assert summary.exit_code == 0 and "1199" in summary.output
    assert CliRunner().invoke(cli_app, ["vouchers", "void", batch_id,
                                        "--database-url", db_url]).exit_code == 0
    assert redeem(client, auth, rows[8]).json()["code"] == "voucher_void"


# -- pure rules -----------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=10**15 - 1), st.integers(0, 14), st.integers(1, 9))
def test_luhn_catches_every_single_digit_typo(body: int, pos: int, delta: int) -> None:
    digits = f"{body:015d}"
    number = digits + rules.luhn_check_digit(digits)
    assert rules.luhn_ok(number)
    typo = number[:pos] + str((int(number[pos]) + delta) % 10) + number[pos + 1:]
    assert not rules.luhn_ok(typo)


def test_new_cards_are_well_formed() -> None:
    for _ in range(200):
        n, s = rules.new_card_number(), rules.new_secret()
        assert len(n) == 16 and n[0] != "0" and rules.luhn_ok(n)
        assert len(s) == 18 and s.isdigit()
    key = b"k"
    assert rules.hash_secret(key, "1", "2") != rules.hash_secret(key, "2", "2")
    assert rules.secret_matches(key, "1", "2", rules.hash_secret(key, "1", "2"))


HOUR = 3_600_000_000


@given(st.lists(st.integers(0, 72), max_size=12))
def test_lock_needs_five_failures_inside_one_window(hours: list[int]) -> None:
    times = sorted(h * HOUR for h in hours)
    if not times:
        return
    now = times[-1]
    until = rules.lock_after_failure(times, now, threshold=5, window_us=24 * HOUR,
                                     lock_us=24 * HOUR)
    recent = [t for t in times if now - 24 * HOUR < t]
    assert (until is not None) == (len(recent) >= 5)
    if until is not None:
        assert until == now + 24 * HOUR
