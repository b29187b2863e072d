"""NFC SIM cards on both databases: issuing (PAN, PSN, the purse account, idempotency), the
state machine (hypothesis over actions, then the same through the services and the HTTP
API), report-lost blocking at once and calling the ``on_lost`` hooks, the ATC guard, the
key store verifying a simulated card's ARQC, and the CLI."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from cash_helpers import (  # type: ignore[import-not-found]
    OPERATOR,
    client,
    clock,
    ctx,
    idem,
    settings,
    wallet,
)
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from paycell.cli import app as cli_app
from paycell.context import Context
from paycell.gateways.bank import luhn_valid
from paycell.ledger.chart import Code
from paycell.onsite import cards, emv
from paycell.onsite.card_sim import CardSim
from paycell.onsite.keystore import KeyStore

__all__ = ["client", "clock", "ctx", "settings"]  # fixtures, imported for pytest
OPS = "/v1/operator/nfc-cards"
MINE = "/v1/wallet/nfc-cards"
_n = itertools.count(1)
ACTIONS = ("activate", "lock", "unlock", "report_lost", "terminate")


def iccid() -> str:
    body = f"898600{next(_n):012d}"
    return body + cards.luhn_digit(body)


def action(ctx: Context, name: str, card_id: int) -> cards.Card:
    if name == "report_lost":
        return cards.report_lost(ctx, card_id, "test")
    fn: Any = getattr(cards, name)
    return fn(ctx, card_id)  # type: ignore[no-any-return]


# -- the pure state machine -----------------------------------------------------------------
MODEL = {  # an independent statement of the rules: (state, action) -> state
    ("issued", "activate"): "active", ("active", "lock"): "locked",
    ("locked", "unlock"): "active",
    **{(s, "report_lost"): "lost" for s in ("issued", "active", "locked")},
    **{(s, "terminate"): "terminated" for s in ("issued", "active", "locked", "lost")},
}


@given(st.lists(st.sampled_from(ACTIONS), max_size=30))
def test_state_machine_follows_the_model(actions: list[str]) -> None:
    state = "issued"
    for a in actions:
        expected = MODEL.get((state, a))
        if expected is None:
            with pytest.raises(cards.NfcCardStateError):
                cards.next_state(state, a)
        else:
            state = cards.next_state(state, a)
            assert state == expected
    assert state in cards.STATES


@given(st.integers(0, 10**12 - 1))
def test_pans_are_19_digits_with_a_luhn_digit(n: int) -> None:
    pan = cards.make_pan(n)
    assert len(pan) == 19 and pan.startswith(cards.BIN) and luhn_valid(pan)


def test_iccid_is_checked() -> None:
    good = iccid()
    assert cards.normalise_iccid(f" {good[:10]} {good[10:]} ") == good
    for bad in ("12345", "99" + good[2:], good[:-1] + str((int(good[-1]) + 1) % 10)):
        with pytest.raises(cards.IccidInvalidError):
            cards.normalise_iccid(bad)


# -- issuing --------------------------------------------------------------------------------
def test_issue_binds_a_card_with_its_own_purse(ctx: Context) -> None:
    sub, _ = wallet(ctx)
    sim = iccid()
    card = cards.issue_card(ctx, sub, sim)
    assert (card.state, card.psn, card.iccid, card.last_atc) == ("issued", "01", sim, 0)
    assert card.pan == cards.make_pan(card.id) and luhn_valid(card.pan)
    assert card.wallet_account_id == sub.wallet_account_id and not card.hot_listed
    purse = ctx.ledger.account(card.ecash_account_id)
    assert purse.code == int(Code.CARD_ECASH) and purse.balance == 0
    assert card.ecash_limit_fen == ctx.settings.ecash_purse_limit_fen
    assert cards.issue_card(ctx, sub, sim) == card  # idempotent
    assert cards.find_by_pan(ctx, card.pan, "01") == card
    assert cards.find_by_pan(ctx, card.pan, "02") is None
    with pytest.raises(cards.NfcCardExistsError):
        cards.issue_card(ctx, sub, iccid())
    other, _ = wallet(ctx)
    with pytest.raises(cards.IccidTakenError):
        cards.issue_card(ctx, other, sim)
    # A terminated card frees the wallet for a new SIM; its old SIM stays taken.
    cards.terminate(ctx, card.id)
    assert cards.issue_card(ctx, sub, iccid()).pan != card.pan
    with pytest.raises(cards.IccidTakenError):
        cards.issue_card(ctx, sub, sim)


# -- lifecycle through the services ---------------------------------------------------------
def test_services_follow_the_state_machine(ctx: Context) -> None:
    sub, _ = wallet(ctx)
    card = cards.issue_card(ctx, sub, iccid())
    state, recorded = "issued", ["issued"]
    script = ["lock", "activate", "activate", "lock", "lock", "unlock", "report_lost",
              "unlock", "activate", "terminate", "terminate", "report_lost"]
    for a in script:
        if state == cards.TRANSITIONS[a][1]:
            assert action(ctx, a, card.id).state == state  # a repeat changes nothing
        elif (state, a) in MODEL:
            state = MODEL[(state, a)]
            assert action(ctx, a, card.id).state == state
            recorded.append(a)
        else:
            with pytest.raises(cards.NfcCardStateError) as err:
                action(ctx, a, card.id)
            assert err.value.code == "nfc_card_state_invalid"
    final = cards.get_card(ctx, card.id)
    assert final.state == "terminated" and final.terminated_at is not None
    assert final.activated_at is not None and final.hot_listed
    assert [e["kind"] for e in cards.card_events(ctx, card.id)] == recorded


def test_report_lost_blocks_at_once_and_calls_the_hooks(
        ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, str, bool]] = []

    def hook(hctx: Context, card: cards.Card) -> None:
        # The block is committed before the hooks run: a fresh read sees it.
        stored = cards.get_card(hctx, card.id)
        seen.append((card.id, stored.state, stored.hot_listed))

    def broken(hctx: Context, card: cards.Card) -> None:
        raise RuntimeError("the OTA queue is down")

    monkeypatch.setattr(cards, "on_lost", [broken, hook])
    sub, _ = wallet(ctx)
    card = cards.activate(ctx, cards.issue_card(ctx, sub, iccid()).id)
    lost = cards.report_lost(ctx, card.id, "subscriber:1", reason="left on the bus")
    assert (lost.state, lost.hot_listed, lost.block_reason) == ("lost", True, "lost")
    assert lost.blocked_at == ctx.clock.now_us()
    assert seen == [(card.id, "lost", True)]  # a failing hook neither stops the others
    assert cards.report_lost(ctx, card.id, "operator").state == "lost"  # idempotent ...
    assert len(seen) == 1  # ... and the hooks ran once
    with pytest.raises(cards.NfcCardStateError):
        cards.unlock(ctx, card.id)
    with pytest.raises(cards.NfcCardNotFoundError):
        cards.report_lost(ctx, card.id + 1000, "operator")
    with pytest.raises(cards.NfcCardNotFoundError):  # another wallet's card
        cards.lock(ctx, card.id, subscriber_id=sub.id + 1)


# -- the ATC guard, and the key store against the simulated card ---------------------------
def test_atc_must_rise(ctx: Context) -> None:
    sub, _ = wallet(ctx)
    card = cards.issue_card(ctx, sub, iccid())
    with ctx.engine.begin() as conn:
        assert cards.check_and_advance_atc(conn, card.id, 5).last_atc == 0
    for replay in (5, 4, 0):
        with ctx.engine.begin() as conn, pytest.raises(cards.AtcReplayedError) as err:
            cards.check_and_advance_atc(conn, card.id, replay)
        assert err.value.code == "atc_replayed" and err.value.detail == {"last_atc": 5}
    with ctx.engine.begin() as conn:
        cards.check_and_advance_atc(conn, card.id, 6)
    assert cards.get_card(ctx, card.id).last_atc == 6
    with ctx.engine.begin() as conn, pytest.raises(cards.NfcCardNotFoundError):
        cards.check_and_advance_atc(conn, card.id + 1000, 1)


def test_simulated_card_arqc_verifies_and_replays_are_refused(ctx: Context) -> None:
    keys = KeyStore(ctx.settings)
    sub, _ = wallet(ctx)
    card = cards.activate(ctx, cards.issue_card(ctx, sub, iccid()).id)
    sim = CardSim.personalised(keys, card.pan, card.psn)
    resp = sim.generate_ac(1_234, unpredictable="1A2B3C4D", date="261126")
    data = resp.txn.to_bytes()
    assert resp.kind == "ARQC"
    assert keys.verify_cryptogram(card.pan, card.psn, resp.atc, data, resp.cryptogram)
    tampered = bytes([resp.cryptogram[0] ^ 0x01]) + resp.cryptogram[1:]
    assert not keys.verify_cryptogram(card.pan, card.psn, resp.atc, data, tampered)
    more = emv.TxnData(**{**resp.txn.__dict__, "amount_fen": 123_400}).to_bytes()
    assert not keys.verify_cryptogram(card.pan, card.psn, resp.atc, more, resp.cryptogram)
    assert not keys.verify_cryptogram(card.pan, "02", resp.atc, data, resp.cryptogram)
    with ctx.engine.begin() as conn:
        cards.check_and_advance_atc(conn, card.id, resp.atc)
    with ctx.engine.begin() as conn, pytest.raises(cards.AtcReplayedError):
        cards.check_and_advance_atc(conn, card.id, resp.atc)  # the same tap sent again


# -- HTTP -----------------------------------------------------------------------------------
def test_operator_and_wallet_api(client: TestClient, ctx: Context,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    lost: list[int] = []
    monkeypatch.setattr(cards, "on_lost", [lambda _c, card: lost.append(card.id)])
    sub, auth = wallet(ctx)
    other, other_auth = wallet(ctx)
    sim = iccid()
    body = {"msisdn": sub.msisdn, "iccid": sim}
    key = idem()
    r = client.post(OPS, json=body, headers={**OPERATOR, **key})
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["state"], out["iccid"], out["ecash_balance_fen"]) == ("issued", sim, 0)
    card_id = out["id"]
    assert client.post(OPS, json=body, headers={**OPERATOR, **key}).json() == out  # replay
    r = client.post(OPS, json={"msisdn": other.msisdn, "iccid": sim},
                    headers={**OPERATOR, **idem()})
    assert (r.status_code, r.json()["code"]) == (409, "iccid_taken")
    r = client.post(OPS, json={"msisdn": other.msisdn, "iccid": "8986"},
                    headers={**OPERATOR, **idem()})
    assert r.status_code == 422
    assert client.post(OPS, json=body).status_code == 401

    r = client.post(f"{OPS}/{card_id}/activate", headers={**OPERATOR, **idem()})
    assert r.json()["state"] == "active"
    mine = client.get(MINE, headers=auth).json()
    assert [c["id"] for c in mine] == [card_id] and "*" in mine[0]["pan"]
    assert client.get(MINE, headers=other_auth).json() == []
    r = client.get(f"{MINE}/{card_id}", headers=other_auth)
    assert (r.status_code, r.json()["code"]) == (404, "nfc_card_not_found")
    r = client.post(f"{MINE}/{card_id}/lock", headers={**other_auth, **idem()})
    assert r.status_code == 404
    r = client.post(f"{MINE}/{card_id}/lock", headers={**auth, **idem()})
    assert r.json()["state"] == "locked"
    r = client.post(f"{MINE}/{card_id}/report-lost", json={"reason": "stolen"},
                    headers={**auth, **idem()})
    assert (r.json()["state"], r.json()["hot_listed"]) == ("lost", True)
    assert lost == [card_id]
    r = client.post(f"{MINE}/{card_id}/unlock", headers={**auth, **idem()})
    assert (r.status_code, r.json()["code"]) == (409, "nfc_card_state_invalid")
    r = client.post(f"{MINE}/{card_id}/terminate", headers={**auth, **idem()})
    assert r.status_code == 422  # not the holder's to do
    r = client.post(f"{OPS}/{card_id}/terminate", headers={**OPERATOR, **idem()})
    assert r.json()["state"] == "terminated"
    page = client.get(OPS, params={"msisdn": sub.msisdn}, headers=OPERATOR).json()
    assert [c["id"] for c in page["items"]] == [card_id]
    assert client.get(f"{OPS}/{card_id}", headers=OPERATOR).json()["pan"].isdigit()
    assert client.get(OPS, params={"state": "active"}, headers=OPERATOR).json()["items"] == []


def test_operator_list_pages(client: TestClient, ctx: Context) -> None:
    ids = [cards.issue_card(ctx, wallet(ctx)[0], iccid()).id for _ in range(3)]
    first = client.get(OPS, params={"limit": 2}, headers=OPERATOR).json()
    assert [c["id"] for c in first["items"]] == ids[:2] and first["next_cursor"]
    rest = client.get(OPS, params={"limit": 2, "cursor": first["next_cursor"]},
                      headers=OPERATOR).json()
    assert [c["id"] for c in rest["items"]] == ids[2:] and rest["next_cursor"] is None


# -- CLI ------------------------------------------------------------------------------------
def test_cli_issue_list_report_lost(client: TestClient, ctx: Context, db_url: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cards, "on_lost", [])
    sub, _ = wallet(ctx)
    sim = iccid()
    run = CliRunner().invoke
    r = run(cli_app, ["onsite", "issue-card", sub.msisdn, "--iccid", sim,
                      "--database-url", db_url])
    assert r.exit_code == 0, r.output
    card = cards.find_by_iccid(ctx, sim)
    assert card is not None and card.pan in r.output
    r = run(cli_app, ["onsite", "cards", "--msisdn", sub.msisdn, "--database-url", db_url],
            env={"COLUMNS": "200"})
    assert r.exit_code == 0 and sim in r.output
    r = run(cli_app, ["onsite", "report-lost", str(card.id), "--database-url", db_url])
    assert r.exit_code == 0, r.output
    assert cards.get_card(ctx, card.id).state == "lost"
    r = run(cli_app, ["onsite", "issue-card", sub.msisdn, "--iccid", "123",
                      "--database-url", db_url])
    assert r.exit_code == 1
