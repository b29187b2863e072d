"""Signed merchant requests over HTTP, on both databases: every failure reason with its
code, replays (also across threads), the clock window both ways, key rotation with overlap,
revocation now and scheduled, Ed25519 keys, and merchants kept apart."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from merchant_helpers import (  # type: ignore[import-not-found]
    OPERATOR,
    active_merchant,
    auth_for,
    client,
    clock,
    ctx,
    idem,
    settings,
    signed,
)
from sqlalchemy import func, select

from paycell.clock import ManualClock
from paycell.context import Context
from paycell.merchants import signing as s
from paycell.merchants.tables import nonces

__all__ = ["client", "clock", "ctx", "settings"]  # fixtures, imported for pytest
ME = "/v1/merchant"


def now_s(ctx: Context) -> int:
    return ctx.clock.now_us() // 1_000_000


def send(client: TestClient, method: str, path: str, headers: dict[str, str],
         body: bytes = b"") -> Any:
    return client.request(method, path, content=body, headers=headers)


def problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    return body


def test_a_signed_request_is_accepted_and_names_the_merchant(client: TestClient,
                                                             ctx: Context) -> None:
    m = active_merchant(ctx, "Harbour Coffee")
    r = signed(client, m, "GET", ME)
    assert r.status_code == 200, r.text
    assert r.json()["code"] == m.merchant.code and r.json()["state"] == "active"
    # MerchantAuth (httpx) signs the same way, with the body digest header
    r = client.post(f"{ME}/stores", json={"code": "A1", "name": "Shop", "address": "Road 1"},
                    auth=auth_for(m, ctx), headers=idem())
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("drop", [s.TIMESTAMP, s.NONCE, s.SIGNATURE])
def test_a_missing_header_is_named(client: TestClient, ctx: Context, drop: str) -> None:
    m = active_merchant(ctx)
    h = s.sign_headers(m.key_id, m.secret, "GET", ME, b"", timestamp=now_s(ctx))
    del h[drop]
    body = problem(send(client, "GET", ME, h), 401, "signature_header_missing")
    assert body["header"] == drop and drop in body["detail"]


def test_no_key_id_at_all_is_authentication_required(client: TestClient) -> None:
    body = problem(client.get(ME), 401, "authentication_required")
    assert body["header"] == s.KEY_ID


@pytest.mark.parametrize(("header", "value"), [
    (s.TIMESTAMP, "2026-01-01T00:00:00Z"), (s.NONCE, "short"), (s.NONCE, "has space here"),
    (s.SIGNATURE, "zz" * 32), (s.DIGEST, "abc"), (s.KEY_ID, "mk_ütf")])
def test_a_malformed_header_is_named(client: TestClient, ctx: Context, header: str,
                                     value: str) -> None:
    m = active_merchant(ctx)
    h = s.sign_headers(m.key_id, m.secret, "GET", ME, b"", timestamp=now_s(ctx))
    h[header] = value
    body = problem(client.get(ME, headers={k: v.encode() for k, v in h.items()}),
                   401, "signature_header_invalid")
    assert body["header"] == header


def test_unknown_and_revoked_keys(client: TestClient, ctx: Context) -> None:
    m = active_merchant(ctx)
    h = s.sign_headers("mk_000000000000000000000000", m.secret, "GET", ME, b"",
                       timestamp=now_s(ctx))
    problem(send(client, "GET", ME, h), 401, "key_unknown")
    # a second key, then the first revoked by the merchant itself
    r = signed(client, m, "POST", f"{ME}/credentials", json={"label": "new"})
    assert r.status_code == 201, r.text
    r = signed(client, m, "POST", f"{ME}/credentials/{m.key_id}/revoke", json={})
    assert r.status_code == 200 and r.json()["active"] is False, r.text
    problem(signed(client, m, "GET", ME), 401, "key_revoked")


@pytest.mark.parametrize("direction", [-1, 1])
def test_clock_window_both_directions(client: TestClient, ctx: Context, settings: Any,
                                      direction: int) -> None:
    m = active_merchant(ctx)
    window = settings.signature_window_s
    edge = s.sign_headers(m.key_id, m.secret, "GET", ME, b"",
                          timestamp=now_s(ctx) + direction * window)
    assert send(client, "GET", ME, edge).status_code == 200
    beyond = s.sign_headers(m.key_id, m.secret, "GET", ME, b"",
                            timestamp=now_s(ctx) + direction * (window + 1))
    body = problem(send(client, "GET", ME, beyond), 401, "timestamp_stale")
    assert body["server_time"] == now_s(ctx)
    assert ("behind" if direction < 0 else "ahead") in body["detail"]


def test_a_replayed_request_is_refused(client: TestClient, ctx: Context) -> None:
    m = active_merchant(ctx)
    h = s.sign_headers(m.key_id, m.secret, "GET", ME, b"", timestamp=now_s(ctx))
    assert send(client, "GET", ME, h).status_code == 200
    problem(send(client, "GET", ME, h), 401, "nonce_replayed")
    # the same nonce with a fresh signature (another timestamp) is still a replay
    h2 = s.sign_headers(m.key_id, m.secret, "GET", ME, b"", timestamp=now_s(ctx) + 1,
                        nonce=h[s.NONCE])
    problem(send(client, "GET", ME, h2), 401, "nonce_replayed")


def test_a_nonce_is_remembered_for_the_window_then_forgotten(client: TestClient,
                                                             ctx: Context,
                                                             clock: ManualClock) -> None:
    m = active_merchant(ctx)
    ts = now_s(ctx)
    h = s.sign_headers(m.key_id, m.secret, "GET", ME, b"", timestamp=ts)
    assert send(client, "GET", ME, h).status_code == 200
    clock.advance(seconds=300)  # still inside the window: remembered
    problem(send(client, "GET", ME, h), 401, "nonce_replayed")
    clock.advance(seconds=1)  # the timestamp is out: stale, whatever the nonce
    problem(send(client, "GET", ME, h), 401, "timestamp_stale")
    clock.advance(seconds=10)
    assert signed(client, m, "GET", ME).status_code == 200  # prunes this key's old nonces
    with ctx.engine.connect() as conn:
        left = conn.execute(select(nonces.c.nonce).where(nonces.c.key_id == m.key_id)).all()
    assert h[s.NONCE] not in {n for (n,) in left}


def test_a_refused_request_does_not_spend_its_nonce(client: TestClient, ctx: Context) -> None:
    m = active_merchant(ctx)
    h = s.sign_headers(m.key_id, m.secret, "GET", ME, b"", timestamp=now_s(ctx))
    bad = {**h, s.SIGNATURE: "0" * 64}
    problem(send(client, "GET", ME, bad), 401, "signature_mismatch")
    assert send(client, "GET", ME, h).status_code == 200


def test_digest_mismatch_and_signature_mismatch(client: TestClient, ctx: Context) -> None:
    m = active_merchant(ctx)
    body = b'{"code":"B1","name":"Shop","address":"Road"}'
    path = f"{ME}/stores"
    h = s.sign_headers(m.key_id, m.secret, "POST", path, body, timestamp=now_s(ctx),
                       send_digest=True) | idem(**{"Content-Type": "application/json"})
    tampered = body.replace(b"Shop", b"Shoq")
    problem(send(client, "POST", path, h, tampered), 401, "digest_mismatch")
    # without the digest header a changed body shows as a signature mismatch
    del h[s.DIGEST]
    problem(send(client, "POST", path, h, tampered), 401, "signature_mismatch")
    # another method, path or query than the one signed
    h = s.sign_headers(m.key_id, m.secret, "GET", ME, b"", timestamp=now_s(ctx))
    problem(send(client, "GET", f"{ME}?x=1", h), 401, "signature_mismatch")
    h = s.sign_headers(m.key_id, m.secret + "x", "GET", ME, b"", timestamp=now_s(ctx))
    problem(send(client, "GET", ME, h), 401, "signature_mismatch")
    # nothing was written by any of these
    assert signed(client, m, "GET", f"{ME}/stores").json()["items"] == []


def test_query_and_percent_encoding_are_signed_as_sent(client: TestClient,
                                                       ctx: Context) -> None:
    m = active_merchant(ctx)
    for target in (f"{ME}/stores?limit=5&x=a%20b", f"{ME}/stores?q=%E4%B8%AD"):
        h = s.sign_headers(m.key_id, m.secret, "GET", target, b"", timestamp=now_s(ctx))
        assert send(client, "GET", target, h).status_code == 200, target


def test_rotation_overlap_and_scheduled_revocation(client: TestClient, ctx: Context,
                                                   clock: ManualClock) -> None:
    m = active_merchant(ctx)
    r = signed(client, m, "POST", f"{ME}/credentials", json={"label": "2026 rotation"})
    assert r.status_code == 201 and r.json()["secret_shown"] is True
    new = type(m)(m.merchant, r.json()["credential"]["key_id"], r.json()["secret"],
                  m.webhook_secret)
    # both keys work during the overlap
    assert signed(client, m, "GET", ME).status_code == 200
    assert signed(client, new, "GET", ME).status_code == 200
    # the old key is revoked in an hour: still fine now, refused after
    r = signed(client, new, "POST", f"{ME}/credentials/{m.key_id}/revoke",
               json={"after_s": 3600})
    assert r.status_code == 200 and r.json()["active"] is True
    clock.advance(seconds=3599)
    assert signed(client, m, "GET", ME).status_code == 200
    clock.advance(seconds=1)
    problem(signed(client, m, "GET", ME), 401, "key_revoked")
    assert signed(client, new, "GET", ME).status_code == 200
    # the last active key cannot be revoked by the merchant
    problem(signed(client, new, "POST", f"{ME}/credentials/{new.key_id}/revoke", json={}),
            409, "credential_last_active")
    listed = signed(client, new, "GET", f"{ME}/credentials").json()["items"]
    assert [c["active"] for c in listed] == [False, True]
    assert all("secret" not in c for c in listed)


def test_ed25519_credentials(client: TestClient, ctx: Context) -> None:
    m = active_merchant(ctx)
    private = Ed25519PrivateKey.generate()
    r = signed(client, m, "POST", f"{ME}/credentials",
               json={"kind": "ed25519", "public_key": s.ed25519_public_hex(private)})
    assert r.status_code == 201, r.text
    assert r.json()["secret"] is None
    key_id = r.json()["credential"]["key_id"]
    h = s.sign_headers(key_id, private, "GET", ME, b"", timestamp=now_s(ctx))
    assert send(client, "GET", ME, h).status_code == 200
    other = s.sign_headers(key_id, Ed25519PrivateKey.generate(), "GET", ME, b"",
                           timestamp=now_s(ctx))
    problem(send(client, "GET", ME, other), 401, "signature_mismatch")
    problem(signed(client, m, "POST", f"{ME}/credentials",
                   json={"kind": "ed25519", "public_key": "00" * 31}), 422,
            "credential_invalid")


def test_a_merchant_cannot_reach_another_merchants_data(client: TestClient,
                                                        ctx: Context) -> None:
    a, b = active_merchant(ctx, "Shop A"), active_merchant(ctx, "Shop B")
    r = signed(client, b, "POST", f"{ME}/stores", json={"code": "B1", "name": "B's",
                                                        "address": "Road"})
    b_store = r.json()["id"]
    problem(signed(client, a, "GET", f"{ME}/stores/{b_store}"), 404, "store_not_found")
    problem(signed(client, a, "POST", f"{ME}/stores/{b_store}/close"), 404,
            "store_not_found")
    problem(signed(client, a, "POST", f"{ME}/credentials/{b.key_id}/revoke", json={}),
            404, "credential_not_found")
    assert signed(client, a, "GET", f"{ME}/stores").json()["items"] == []
    assert signed(client, b, "GET", f"{ME}/stores/{b_store}").json()["state"] == "open"
    assert signed(client, b, "GET", ME).status_code == 200  # B's key untouched


def test_suspended_and_terminated_merchants_are_403(client: TestClient, ctx: Context) -> None:
    m = active_merchant(ctx)
    mid = m.merchant.id
    r = client.post(f"/v1/merchants/{mid}/suspend", json={"reason": "chargebacks"},
                    headers=idem(**OPERATOR))
    assert r.status_code == 200, r.text
    body = problem(signed(client, m, "GET", ME), 403, "merchant_not_active")
    assert body["state"] == "suspended"
    client.post(f"/v1/merchants/{mid}/reinstate", json={"reason": "cleared"},
                headers=idem(**OPERATOR))
    assert signed(client, m, "GET", ME).status_code == 200
    approval = client.post(f"/v1/merchants/{mid}/terminate", json={"reason": "closed down"},
                           headers=idem(**OPERATOR)).json()
    assert signed(client, m, "GET", ME).status_code == 200  # proposed, not yet approved
    r = client.post("/v1/operators", json={"name": "bob", "role": "operator"},
                    headers=idem(**OPERATOR))
    bob = {"X-API-Key": r.json()["api_key"]}
    r = client.post(f"/v1/approvals/{approval['id']}/approve", json={}, headers=idem(**bob))
    assert r.status_code == 200, r.text
    problem(signed(client, m, "GET", ME), 401, "key_revoked")  # termination revokes keys


@pytest.mark.postgres_only
def test_a_replay_racing_the_original_is_refused_once(client: TestClient,
                                                      ctx: Context) -> None:
    """The same signed request sent by 8 threads at once: exactly one gets through."""
    m = active_merchant(ctx)
    h = s.sign_headers(m.key_id, m.secret, "GET", ME, b"", timestamp=now_s(ctx))
    barrier, codes = threading.Barrier(8), []

    def go() -> None:
        barrier.wait()
        codes.append(send(client, "GET", ME, h).status_code)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] + [401] * 7
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(nonces)
                            .where(nonces.c.nonce == h[s.NONCE])).scalar_one() == 1


# -- the pure computation --------------------------------------------------------------------
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE"])
targets = st.from_regex(r"/v1/[a-z0-9/%._-]{0,40}(\?[a-z0-9=&%]{1,20})?", fullmatch=True)


@given(method=methods, target=targets, body=st.binary(max_size=300),
       ts=st.integers(0, 10**11), nonce=st.from_regex(r"[A-Za-z0-9_-]{8,64}", fullmatch=True),
       secret=st.text(min_size=1, max_size=60))
@hsettings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_any_change_to_a_signed_part_breaks_the_signature(method: str, target: str,
                                                          body: bytes, ts: int, nonce: str,
                                                          secret: str) -> None:
    h = s.sign_headers("mk_x", secret, method, target, body, timestamp=ts, nonce=nonce)
    text = s.canonical_string(method, target, str(ts), nonce, s.body_digest(body))
    assert h[s.SIGNATURE] == s.hmac_signature(secret, text)
    variants = [(method, target + "x", body, ts, nonce), (method, target, body + b"\0", ts,
                nonce), (method, target, body, ts + 1, nonce),
                (method, target, body, ts, nonce[:-1] + ("a" if nonce[-1] != "a" else "b")),
                ("PATCH", target, body, ts, nonce)]
    for m2, t2, b2, ts2, n2 in variants:
        other = s.canonical_string(m2, t2, str(ts2), n2, s.body_digest(b2))
        assert s.hmac_signature(secret, other) != h[s.SIGNATURE]
    e = s.explain(method=method, target=target, timestamp=str(ts), nonce=nonce, body=body,
                  signature=h[s.SIGNATURE], secret=secret)
    assert e.signature_ok and e.expected == h[s.SIGNATURE] and e.canonical == text
