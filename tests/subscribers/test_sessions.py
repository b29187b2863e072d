"""Sign-up, login, refresh, logout, expiry and the PIN lock, over HTTP."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from wallets import PIN, bearer, key, login, signup

from paycell.clock import ManualClock
from paycell.context import Context
from paycell.subscribers import tokens as tk
from paycell.subscribers.errors import TokenExpiredError, TokenInvalidError
from paycell.subscribers.service import open_account
from paycell.subscribers.tables import sessions, subscribers

A = "+8613800138000"


def _count(engine: Engine, table: object) -> int:
    with engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_sign_up_log_in_read_log_out(client: TestClient) -> None:
    me = signup(client, "138 0013 8000")
    assert me["msisdn"] == A and me["tier"] == 0 and me["state"] == "active"
    tokens = login(client, A)
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
    r = client.get("/v1/wallet", headers=bearer(tokens))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["balance_fen"] == body["available_fen"] == body["pending_fen"] == 0
    assert body["limits"]["balance_cap_fen"] == 100_000 and body["tier"] == 0
    r = client.post("/v1/wallet/logout", headers=bearer(tokens, **key()))
    assert r.status_code == 200 and r.json()["status"] == "logged_out"
    r = client.get("/v1/wallet", headers=bearer(tokens))
    assert r.status_code == 401 and r.json()["code"] == "token_invalid"
    r = client.post("/v1/wallet/token/refresh",
                    json={"refresh_token": tokens["refresh_token"]}, headers=key())
    assert r.status_code == 401 and r.json()["code"] == "token_invalid"


def test_sign_up_refusals(client: TestClient, engine: Engine) -> None:
    cases = [
        ({"msisdn": A, "pin": "123456"}, 422, "pin_trivial"),
        ({"msisdn": A, "pin": "138000"}, 422, "pin_trivial"),  # the number's tail
        ({"msisdn": A, "pin": "12a456"}, 422, "pin_trivial"),
        ({"msisdn": "12345", "pin": PIN}, 422, "invalid_msisdn"),
        ({"msisdn": A, "pin": PIN, "name": "Li Lei"}, 422, "id_number_invalid"),
        ({"msisdn": A, "pin": PIN, "name": "Li Lei", "id_number": "110105194912310021"},
         422, "id_number_invalid"),  # wrong check digit
        ({"msisdn": A, "pin": PIN, "extra": 1}, 422, "validation_error"),
    ]
    for body, status, code in cases:
        r = client.post("/v1/wallet/signup", json=body, headers=key())
        assert (r.status_code, r.json()["code"]) == (status, code), (body, r.text)
    r = client.post("/v1/wallet/signup", json={"msisdn": A, "pin": PIN})
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_required"
    assert _count(engine, subscribers) == 0
    signup(client, A)
    r = client.post("/v1/wallet/signup", json={"msisdn": A, "pin": "862514"}, headers=key())
    assert r.status_code == 409 and r.json()["code"] == "msisdn_registered"
    named = signup(client, "+8613900139000", name="Li Lei", id_number="11010519491231002X")
    assert named["tier"] == 1


def test_a_replayed_sign_up_has_one_effect(client: TestClient, engine: Engine) -> None:
    k = key()
    body = {"msisdn": A, "pin": PIN}
    first = client.post("/v1/wallet/signup", json=body, headers=k)
    again = client.post("/v1/wallet/signup", json=body, headers=k)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert _count(engine, subscribers) == 1
    other = client.post("/v1/wallet/signup", json={"msisdn": A, "pin": "862514"}, headers=k)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"


def test_a_replayed_login_renews_the_same_session(client: TestClient, engine: Engine) -> None:
    signup(client, A)
    k = key()
    first = client.post("/v1/wallet/login", json={"msisdn": A, "pin": PIN}, headers=k)
    again = client.post("/v1/wallet/login", json={"msisdn": A, "pin": PIN}, headers=k)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert _count(engine, sessions) == 1
    assert client.get("/v1/wallet", headers=bearer(first.json())).status_code == 401
    assert client.get("/v1/wallet", headers=bearer(again.json())).status_code == 200
    assert client.post("/v1/wallet/login", json={"msisdn": A, "pin": PIN}).status_code == 422


def test_login_refusals_do_not_tell_which_numbers_exist(client: TestClient) -> None:
    r = client.post("/v1/wallet/login", json={"msisdn": A, "pin": PIN}, headers=key())
    assert r.status_code == 401 and r.json()["code"] == "credentials_invalid"
    signup(client, A)
    r = client.post("/v1/wallet/login", json={"msisdn": A, "pin": "862514"}, headers=key())
    assert r.status_code == 401 and r.json()["code"] == "credentials_invalid"
    assert r.json()["remaining_tries"] == 4
    for h in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic eDp5"}):
        r = client.get("/v1/wallet", headers=h)
        assert r.status_code == 401
        assert r.json()["code"] in ("authentication_required", "token_invalid")


def test_refresh_rotates_and_a_reused_refresh_token_ends_the_session(
        client: TestClient) -> None:
    signup(client, A)
    t1 = login(client, A)
    k = key()
    r = client.post("/v1/wallet/token/refresh", json={"refresh_token": t1["refresh_token"]},
                    headers=k)
    assert r.status_code == 200 and "Idempotent-Replayed" not in r.headers
    t2 = r.json()
    assert client.get("/v1/wallet", headers=bearer(t1)).status_code == 401
    assert client.get("/v1/wallet", headers=bearer(t2)).status_code == 200
    # The answer was lost: the same key and token again renew the pair once more.
    r = client.post("/v1/wallet/token/refresh", json={"refresh_token": t1["refresh_token"]},
                    headers=k)
    assert r.status_code == 200 and r.headers["Idempotent-Replayed"] == "true"
    t3 = r.json()
    assert client.get("/v1/wallet", headers=bearer(t2)).status_code == 401
    assert client.get("/v1/wallet", headers=bearer(t3)).status_code == 200
    # Someone else replays the old refresh token with a key of their own: the session ends.
    r = client.post("/v1/wallet/token/refresh", json={"refresh_token": t1["refresh_token"]},
                    headers=key())
    assert r.status_code == 401 and r.json()["code"] == "token_invalid"
    assert client.get("/v1/wallet", headers=bearer(t3)).status_code == 401


def test_tokens_expire(client: TestClient, clock: ManualClock) -> None:
    signup(client, A)
    tokens = login(client, A)
    clock.advance(minutes=15)
    r = client.get("/v1/wallet", headers=bearer(tokens))
    assert r.status_code == 401 and r.json()["code"] == "token_expired"
    r = client.post("/v1/wallet/token/refresh",
                    json={"refresh_token": tokens["refresh_token"]}, headers=key())
    assert r.status_code == 200
    fresh = r.json()
    assert client.get("/v1/wallet", headers=bearer(fresh)).status_code == 200
    clock.advance(days=30)
    r = client.post("/v1/wallet/token/refresh",
                    json={"refresh_token": fresh["refresh_token"]}, headers=key())
    assert r.status_code == 401 and r.json()["code"] == "token_expired"


def test_five_wrong_pins_lock_login_for_thirty_minutes(
        client: TestClient, clock: ManualClock) -> None:
    signup(client, A)
    for left in (4, 3, 2, 1):
        r = client.post("/v1/wallet/login", json={"msisdn": A, "pin": "862514"},
                        headers=key())
        assert r.status_code == 401 and r.json()["remaining_tries"] == left
    r = client.post("/v1/wallet/login", json={"msisdn": A, "pin": "862514"}, headers=key())
    assert r.status_code == 403 and r.json()["code"] == "pin_locked"
    assert r.json()["locked_until"] == "2026-01-01T00:30:00Z"
    r = client.post("/v1/wallet/login", json={"msisdn": A, "pin": PIN}, headers=key())
    assert r.status_code == 403 and r.json()["code"] == "pin_locked"
    clock.advance(minutes=30)
    login(client, A)


def test_changing_the_pin_ends_every_session(client: TestClient) -> None:
    signup(client, A)
    t1, t2 = login(client, A), login(client, A)
    r = client.post("/v1/wallet/pin", json={"old_pin": PIN, "new_pin": "111111"},
                    headers=bearer(t1, **key()))
    assert r.status_code == 422 and r.json()["code"] == "pin_trivial"
    r = client.post("/v1/wallet/pin", json={"old_pin": "862514", "new_pin": "590213"},
                    headers=bearer(t1, **key()))
    assert r.status_code == 403 and r.json()["code"] == "pin_invalid"
    k = bearer(t1, **key())
    r = client.post("/v1/wallet/pin", json={"old_pin": PIN, "new_pin": "590213"}, headers=k)
    assert r.status_code == 200 and r.json()["status"] == "pin_changed"
    for t in (t1, t2):
        assert client.get("/v1/wallet", headers=bearer(t)).status_code == 401
    r = client.post("/v1/wallet/login", json={"msisdn": A, "pin": PIN}, headers=key())
    assert r.status_code == 401
    login(client, A, "590213")


def test_tokens_looked_up_together_answer_as_each_alone(ctx: Context, clock: ManualClock
                                                        ) -> None:
    """The API's session desk looks tokens up in batches (tokens.authenticate_many)."""
    subs = [open_account(ctx, f"+86138001380{i:02d}", PIN) for i in range(3)]
    old = tk.login(ctx, subs[0].msisdn, PIN, str(uuid.uuid4()))[0]
    clock.advance(600)
    live = [tk.login(ctx, s.msisdn, PIN, str(uuid.uuid4()))[0] for s in subs]
    gone = tk.login(ctx, subs[2].msisdn, PIN, str(uuid.uuid4()))[0]
    tk.logout(ctx, gone.session_id)
    clock.advance(400)  # ``old`` is past its 900 s; the others are not
    asked = [live[0].access_token, old.access_token, gone.access_token, "pca_nobody",
             live[1].access_token, live[0].access_token, live[2].access_token, ""]

    def alone(token: str) -> object:
        try:
            return tk.authenticate(ctx, token)
        except (TokenInvalidError, TokenExpiredError) as exc:
            return exc

    together = tk.authenticate_many(ctx, asked)
    assert [type(x) for x in together] == [type(alone(t)) for t in asked]
    assert [type(x).__name__ for x in together] == [
        "SessionInfo", "TokenExpiredError", "TokenInvalidError", "TokenInvalidError",
        "SessionInfo", "SessionInfo", "SessionInfo", "TokenInvalidError"]
    found = [x for x in together if isinstance(x, tk.SessionInfo)]
    assert [(x.session_id, x.subscriber.id) for x in found] == [
        (live[0].session_id, subs[0].id), (live[1].session_id, subs[1].id),
        (live[0].session_id, subs[0].id), (live[2].session_id, subs[2].id)]
    assert tk.authenticate_many(ctx, []) == []
