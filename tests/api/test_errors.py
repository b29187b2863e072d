"""Every error is RFC 9457 problem+json with a stable code; bad input is a 4xx, never a 500."""

from __future__ import annotations

import re
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from paycell import db
from paycell.api.app import create_app
from paycell.config import Settings
from paycell.errors import PaycellError

PROBLEM_FIELDS = {"type", "title", "status", "detail", "code", "instance"}


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert set(body) >= PROBLEM_FIELDS
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"https://paycell.dev/errors/{code}"
    assert body["instance"] == r.request.url.path
    assert body["title"] and body["detail"]
    return body


def test_missing_api_key_is_401_authentication_required(client: TestClient) -> None:
    r = client.get("/v1/ledger/accounts/1")
    assert_problem(r, 401, "authentication_required")
    assert "X-API-Key" in r.headers["www-authenticate"]


def test_wrong_api_key_is_401_invalid_api_key(client: TestClient) -> None:
    assert_problem(client.get("/v1/ledger/accounts/1", headers={"X-API-Key": "nope"}),
                   401, "invalid_api_key")


def test_a_key_with_odd_bytes_is_refused_not_a_crash(client: TestClient) -> None:
    r = client.get("/v1/ledger/accounts/1", headers={"X-API-Key": "cl\xe9".encode("latin-1")})
    assert_problem(r, 401, "invalid_api_key")


def test_authentication_comes_before_validation(client: TestClient) -> None:
    # An unauthenticated caller learns nothing about which parameters would be valid.
    assert_problem(client.get("/v1/ledger/accounts/abc"), 401, "authentication_required")


def test_unknown_account_is_404(client: TestClient, auth: dict[str, str]) -> None:
    body = assert_problem(client.get("/v1/ledger/accounts/424242", headers=auth),
                          404, "account_not_found")
    assert "424242" in body["detail"]


def test_unknown_route_is_404_not_found(client: TestClient, auth: dict[str, str]) -> None:
    assert_problem(client.get("/v1/no/such/thing", headers=auth), 404, "not_found")
    assert_problem(client.get("/nowhere"), 404, "not_found")


def test_wrong_method_is_405(client: TestClient) -> None:
    r = client.delete("/health")
    assert_problem(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "GET"


@pytest.mark.parametrize("cursor", ["garbage", "!!!", "MTp4", "", "x" * 100])
def test_bad_cursor_is_422_cursor_invalid(
    client: TestClient, auth: dict[str, str], cursor: str,
) -> None:
    ledger = client.app.state.ledger  # type: ignore[attr-defined]
    acct = ledger.create_account("errors:cursor", code=100).id
    r = client.get(f"/v1/ledger/accounts/{acct}/transfers", params={"cursor": cursor},
                   headers=auth)
    assert_problem(r, 422, "cursor_invalid")


def test_a_cursor_of_another_account_is_refused(client: TestClient, auth: dict[str, str]) -> None:
    from paycell.ledger.api import encode_cursor

    ledger = client.app.state.ledger  # type: ignore[attr-defined]
    acct = ledger.create_account("errors:cursor2", code=100).id
    r = client.get(f"/v1/ledger/accounts/{acct}/transfers",
                   params={"cursor": encode_cursor(acct + 1, 5)}, headers=auth)
    assert_problem(r, 422, "cursor_invalid")


@pytest.mark.parametrize(("path", "where", "field"), [
    ("/v1/ledger/accounts/abc", "path", "account_id"),
    ("/v1/ledger/accounts/0", "path", "account_id"),
    ("/v1/ledger/accounts/99999999999999999999", "path", "account_id"),
    ("/v1/ledger/accounts/1/transfers?limit=0", "query", "limit"),
    ("/v1/ledger/accounts/1/transfers?limit=201", "query", "limit"),
    ("/v1/ledger/accounts", "query", "name"),
])
def test_invalid_parameters_are_422_validation_error(
    client: TestClient, auth: dict[str, str], path: str, where: str, field: str,
) -> None:
    body = assert_problem(client.get(path, headers=auth), 422, "validation_error")
    assert body["errors"][0]["in"] == where
    assert body["errors"][0]["field"] == field
    assert body["errors"][0]["message"]
    # Only what a caller can use: no echo of the input, no pydantic internals.
    assert all(set(e) == {"in", "field", "message"} for e in body["errors"])


def test_error_detail_kwargs_become_problem_fields(client: TestClient) -> None:
    class QuotaError(PaycellError):
        code = "quota_exceeded"

    app = client.app

    @app.get("/test-only/quota")  # type: ignore[attr-defined]
    def _quota() -> None:
        raise QuotaError("too many", limit_fen=500, code="ignored", status=999)

    body = assert_problem(client.get("/test-only/quota"), 400, "quota_exceeded")
    assert body["limit_fen"] == 500
    assert body["detail"] == "too many"


def test_a_malformed_amount_is_422_not_500(client: TestClient) -> None:
    from paycell.money import parse_amount

    @client.app.get("/test-only/amount")  # type: ignore[attr-defined]
    def _amount(value: str) -> int:
        return parse_amount(value)

    assert client.get("/test-only/amount", params={"value": "12.30"}).json() == 1230
    body = assert_problem(client.get("/test-only/amount", params={"value": "12.345"}),
                          422, "invalid_amount")
    assert "12.345" in body["detail"]


def test_an_unexpected_error_is_a_bare_500(settings: Settings, caplog: Any) -> None:
    app = create_app(settings)

    @app.get("/test-only/boom")
    def _boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/test-only/boom")
    body = assert_problem(r, 500, "internal_error")
    assert "secret" not in r.text
    assert set(body) == PROBLEM_FIELDS
    assert any("secret internals" in str(rec.exc_info) for rec in caplog.records)


# Wallet endpoints a subscriber uses before having a token.
PUBLIC = {"/v1/wallet/signup", "/v1/wallet/login", "/v1/wallet/token/refresh",
          "/v1/wallet/pin/reset", "/v1/wallet/pin/reset/confirm"}


def test_every_v1_endpoint_requires_authentication(client: TestClient) -> None:
    """Operator endpoints need the API key, wallet endpoints a subscriber's Bearer token,
    other callers their own credentials; only the few listed in PUBLIC need none."""
    spec = client.get("/openapi.json").json()
    operations = [(method, path) for path, ops in spec["paths"].items()
                  if path.startswith("/v1/") and path not in PUBLIC for method in ops]
    assert len(operations) >= 6
    for method, path in operations:
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        r = client.request(method.upper(), concrete)
        assert_problem(r, 401, "authentication_required")
        security = spec["paths"][path][method]["security"]
        if path == "/v1/wallet" or path.startswith("/v1/wallet/"):
            assert security == [{"HTTPBearer": []}], (method, path)
        elif path.startswith(("/v1/operator/", "/v1/ledger/")):
            assert security == [{"APIKeyHeader": []}], (method, path)
        else:  # other callers (agents, merchants, terminals) have schemes of their own
            assert security, (method, path)
    for path in PUBLIC:
        assert "security" not in spec["paths"][path]["post"]


def test_openapi_documents_problem_json(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/ledger/accounts/{account_id}"]["get"]
    for status in ("401", "404", "422"):
        content = op["responses"][status]["content"]
        assert list(content) == ["application/problem+json"]
        assert content["application/problem+json"]["schema"]["$ref"].endswith("/Problem")
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"


def _drop_connections(db_url: str) -> int:
    """Terminate every other session on the test's database: what a PostgreSQL restart
    does to the API's pooled connections."""
    from sqlalchemy.engine import make_url

    url = make_url(db_url)
    with psycopg.connect(host=url.host, port=url.port, user=url.username, dbname=url.database,
                         autocommit=True) as admin:
        rows = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                             " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                             ).fetchall()
    return len(rows)


@pytest.mark.postgres_only
@pytest.mark.parametrize("idle_ping_s, status, code", [
    (3600.0, 503, "database_unavailable"),  # not pinged: the request finds it dead
    (0.0, 404, "account_not_found"),  # every pooled connection counts as idle: pinged
])
def test_a_dead_database_connection(client: TestClient, auth: dict[str, str], db_url: str,
                                    monkeypatch: pytest.MonkeyPatch, idle_ping_s: float,
                                    status: int, code: str) -> None:
    """A connection the server dropped (as a restart does) is replaced before use when it
    sat idle; otherwise its request gets a 503 to retry, and the next one connects anew."""
    def get() -> httpx.Response:
        return client.get("/v1/ledger/accounts/999999", headers=auth)

    assert_problem(get(), 404, "account_not_found")
    monkeypatch.setattr(db, "IDLE_PING_S", idle_ping_s)
    assert _drop_connections(db_url) >= 1
    r = get()
    assert_problem(r, status, code)
    if status == 503:
        assert r.headers["retry-after"] == "1"
    assert_problem(get(), 404, "account_not_found")  # SQLAlchemy dropped the dead pool
