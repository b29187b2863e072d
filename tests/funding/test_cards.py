"""Binding bank cards over HTTP against the loopback bank, on both databases: Luhn, the
bank's SMS code, several cards with one default, unbinding, and each subscriber seeing
only their own cards."""

from __future__ import annotations

from fastapi.testclient import TestClient
from funding_helpers import (  # type: ignore[import-not-found]
    BLOCKED_CARD,
    CCB_CARD,
    GOOD_CARD,
    bind_card,
    client,
    clock,
    ctx,
    idem,
    last_code,
    settings,
    sims,
    wallet,
)
from sqlalchemy import select

from paycell.context import Context
from paycell.funding.cards import default_card
from paycell.funding.tables import cards

__all__ = ["client", "clock", "ctx", "settings", "sims"]


def test_bind_a_card_with_the_banks_sms_code(client: TestClient, ctx: Context) -> None:
    sub, auth = wallet(ctx)
    r = client.post("/v1/wallet/cards", json={"card_number": "6222 0200 0000 0007"},
                    headers=idem(**auth))
    assert r.status_code == 201, r.text
    card = r.json()
    assert card["state"] == "verifying"
    assert (card["bank"], card["last4"], card["is_default"]) == ("icbc", "0007", False)
    text = ctx.sms.last_to(sub.msisdn)  # type: ignore[attr-defined]
    assert "0007" in text and "ICBC" in text

    r = client.post(f"/v1/wallet/cards/{card['id']}/confirm", json={"code": "000000"},
                    headers=idem(**auth))
    if r.status_code != 200:  # the real code might be 000000 (one chance in a million)
        assert r.status_code == 422 and r.json()["code"] == "card_code_invalid"
        assert r.json()["tries_left"] == 2
    r = client.post(f"/v1/wallet/cards/{card['id']}/confirm",
                    json={"code": last_code(ctx, sub.msisdn)}, headers=idem(**auth))
    assert r.status_code == 200, r.text
    bound = r.json()
    assert bound["state"] == "active" and bound["is_default"] is True
    assert bound["bank_name"] == "Industrial and Commercial Bank of China"

    # Only the token and the last four digits are kept: never the number.
    with ctx.engine.connect() as conn:
        row = conn.execute(select(cards).where(cards.c.id == card["id"])).one()
    assert row.token and row.token.startswith("tok_") and GOOD_CARD not in row.token
    assert all(GOOD_CARD not in str(v) for v in row)
    assert client.get("/v1/wallet/cards", headers=auth).json()["items"] == [bound]


def test_luhn_and_the_banks_refusals(client: TestClient, ctx: Context) -> None:
    _, auth = wallet(ctx)
    r = client.post("/v1/wallet/cards", json={"card_number": "6222020000000008"},
                    headers=idem(**auth))
    assert r.status_code == 422 and r.json()["code"] == "card_number_invalid"
    r = client.post("/v1/wallet/cards", json={"card_number": BLOCKED_CARD},
                    headers=idem(**auth))
    assert r.status_code == 409, r.text
    assert (r.json()["code"], r.json()["reason"]) == ("card_rejected", "card_blocked")
    assert client.get("/v1/wallet/cards", headers=auth).json()["items"] == []


def test_three_wrong_codes_and_the_bank_gives_up(client: TestClient, ctx: Context) -> None:
    sub, auth = wallet(ctx)
    card = client.post("/v1/wallet/cards", json={"card_number": GOOD_CARD},
                       headers=idem(**auth)).json()
    real = last_code(ctx, sub.msisdn)
    wrong = "111111" if real != "111111" else "222222"
    answers = [client.post(f"/v1/wallet/cards/{card['id']}/confirm", json={"code": wrong},
                           headers=idem(**auth)) for _ in range(3)]
    assert [a.json()["code"] for a in answers] == ["card_code_invalid", "card_code_invalid",
                                                   "card_rejected"]
    assert answers[2].json()["reason"] == "too_many_attempts"
    r = client.post(f"/v1/wallet/cards/{card['id']}/confirm", json={"code": real},
                    headers=idem(**auth))
    assert r.status_code == 409 and r.json()["code"] == "card_state_invalid"


def test_several_cards_one_default_and_unbinding(client: TestClient, ctx: Context) -> None:
    sub, auth = wallet(ctx)
    first = bind_card(client, ctx, sub, auth, GOOD_CARD)
    second = bind_card(client, ctx, sub, auth, CCB_CARD)
    assert (first["is_default"], second["is_default"]) == (True, False)
    assert second["bank"] == "ccb"

    r = client.post(f"/v1/wallet/cards/{second['id']}/default", headers=idem(**auth))
    assert r.status_code == 200 and r.json()["is_default"] is True
    listed = {c["id"]: c["is_default"] for c in
              client.get("/v1/wallet/cards", headers=auth).json()["items"]}
    assert listed == {first["id"]: False, second["id"]: True}

    # Unbinding the default hands the role to the other card; the token is forgotten.
    r = client.delete(f"/v1/wallet/cards/{second['id']}", headers=auth)
    assert r.status_code == 200 and r.json()["state"] == "removed"
    d = default_card(ctx, sub.id)
    assert d is not None and d.id == first["id"]
    with ctx.engine.connect() as conn:
        assert conn.execute(select(cards.c.token).where(cards.c.id == second["id"])
                            ).scalar() is None
    assert client.delete(f"/v1/wallet/cards/{second['id']}", headers=auth).status_code == 404
    r = client.post(f"/v1/wallet/cards/{second['id']}/default", headers=idem(**auth))
    assert r.status_code == 409 and r.json()["code"] == "card_state_invalid"
    client.delete(f"/v1/wallet/cards/{first['id']}", headers=auth)
    assert default_card(ctx, sub.id) is None


def test_another_subscribers_card_is_not_found(client: TestClient, ctx: Context) -> None:
    alice, alice_auth = wallet(ctx)
    _, bob_auth = wallet(ctx)
    card = bind_card(client, ctx, alice, alice_auth)
    for r in (client.get(f"/v1/wallet/cards/{card['id']}", headers=bob_auth),
              client.delete(f"/v1/wallet/cards/{card['id']}", headers=bob_auth),
              client.post(f"/v1/wallet/cards/{card['id']}/default", headers=idem(**bob_auth)),
              client.post(f"/v1/wallet/cards/{card['id']}/confirm", json={"code": "123456"},
                          headers=idem(**bob_auth)),
              client.post("/v1/wallet/topups", json={"source": "card", "amount_fen": 100,
                                                     "card_id": card["id"]},
                          headers=idem(**bob_auth)),
              client.post("/v1/wallet/withdrawals", json={"amount_fen": 100, "pin": "730419",
                                                          "card_id": card["id"]},
                          headers=idem(**bob_auth))):
        assert r.status_code == 404, r.text
        assert r.json()["code"] == "card_not_found"
    assert client.get("/v1/wallet/cards", headers=bob_auth).json()["items"] == []
    assert client.get(f"/v1/wallet/cards/{card['id']}", headers=alice_auth).status_code == 200


def test_binding_needs_a_login_and_a_key(client: TestClient, ctx: Context) -> None:
    _, auth = wallet(ctx)
    r = client.post("/v1/wallet/cards", json={"card_number": GOOD_CARD}, headers=idem())
    assert r.status_code == 401
    r = client.post("/v1/wallet/cards", json={"card_number": GOOD_CARD}, headers=auth)
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_required"


def test_a_retried_bind_sends_one_code(client: TestClient, ctx: Context) -> None:
    sub, auth = wallet(ctx)
    headers = idem(**auth)
    first = client.post("/v1/wallet/cards", json={"card_number": GOOD_CARD}, headers=headers)
    again = client.post("/v1/wallet/cards", json={"card_number": GOOD_CARD}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert first.json() == again.json()
    assert len(ctx.sms.messages(sub.msisdn)) == 1  # type: ignore[attr-defined]
