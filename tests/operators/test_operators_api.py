"""Operators over HTTP and the CLI, on both databases: named operators with keys of their
own, roles, the settings key as ``root``, disabling, and existing routes unchanged."""

from __future__ import annotations

from fastapi.testclient import TestClient
from operator_helpers import (  # type: ignore[import-not-found]
    ROOT,
    client,
    clock,
    ctx,
    idem,
    operator,
    settings,
)
from sqlalchemy import func, select
from typer.testing import CliRunner

from paycell.api.auth import require_operator
from paycell.cli import app as cli_app
from paycell.context import Context
from paycell.operators.tables import operators

__all__ = ["client", "clock", "ctx", "settings"]  # fixtures, imported for pytest


def test_the_settings_key_is_root_created_once(client: TestClient, ctx: Context) -> None:
    for _ in range(3):
        r = client.get("/v1/operators/me", headers=ROOT)
        assert r.json() == {"id": r.json()["id"], "name": "root", "role": "admin"}
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(operators)).scalar_one() == 1
        row = conn.execute(select(operators)).one()
    assert row.key_hash is None  # root signs in with the settings key only


def test_add_an_operator_who_then_signs_in(client: TestClient, ctx: Context) -> None:
    h = idem(**ROOT)
    r = client.post("/v1/operators", json={"name": "alice", "role": "operator"}, headers=h)
    assert r.status_code == 201, r.text
    key = r.json()["api_key"]
    assert key.startswith("pco_") and r.json()["api_key_shown"] is True
    replay = client.post("/v1/operators", json={"name": "alice", "role": "operator"},
                         headers=h)
    assert replay.json()["api_key"] is None and replay.json()["api_key_shown"] is False
    me = client.get("/v1/operators/me", headers={"X-API-Key": key}).json()
    assert me["name"] == "alice" and me["role"] == "operator"
    with ctx.engine.connect() as conn:
        stored = conn.execute(select(operators.c.key_hash)
                              .where(operators.c.name == "alice")).scalar_one()
    assert key not in str(stored) and len(stored) == 64
    # existing operator routes accept the new key too
    assert client.get("/v1/ledger/accounts/1", headers={"X-API-Key": key}).status_code == 404
    r = client.post("/v1/operators", json={"name": "alice", "role": "admin"},
                    headers=idem(**ROOT))
    assert r.status_code == 409 and r.json()["code"] == "operator_name_taken"


def test_bad_operator_input_is_422_and_writes_nothing(client: TestClient,
                                                      ctx: Context) -> None:
    for body in ({"name": "Alice!", "role": "operator"}, {"name": "root", "role": "admin"},
                 {"name": "carol", "role": "superuser"}):
        r = client.post("/v1/operators", json=body, headers=idem(**ROOT))
        assert r.status_code == 422 and r.json()["code"] == "operator_invalid", r.text
    with ctx.engine.connect() as conn:
        names = {n for (n,) in conn.execute(select(operators.c.name))}
    assert names == {"root"}


def test_roles(client: TestClient, ctx: Context) -> None:
    _, alice = operator(ctx, "alice", "operator")
    _, audrey = operator(ctx, "audrey", "auditor")
    for who in (alice, audrey):
        r = client.post("/v1/operators", json={"name": "eve", "role": "admin"},
                        headers=idem(**who))
        assert r.status_code == 403 and r.json()["code"] == "operator_role_forbidden"
        assert client.get("/v1/operators", headers=who).status_code == 403
    assert [o["name"] for o in client.get("/v1/operators", headers=ROOT).json()["items"]] \
        == ["alice", "audrey", "root"]  # root's row is made the first time it is used


def test_a_disabled_operator_is_locked_out_at_once(client: TestClient, ctx: Context) -> None:
    _, alice = operator(ctx, "alice")
    assert client.get("/v1/operators/me", headers=alice).status_code == 200
    r = client.post("/v1/operators/alice/disable", headers=idem(**ROOT))
    assert r.status_code == 200, r.text
    r = client.get("/v1/operators/me", headers=alice)
    assert r.status_code == 401 and r.json()["code"] == "invalid_api_key"
    r = client.post("/v1/operators/root/disable", headers=idem(**ROOT))
    assert r.status_code == 422
    r = client.post("/v1/operators/nobody/disable", headers=idem(**ROOT))
    assert r.status_code == 404 and r.json()["code"] == "operator_not_found"


def test_missing_and_wrong_keys(client: TestClient) -> None:
    r = client.get("/v1/operators/me")
    assert r.status_code == 401 and r.json()["code"] == "authentication_required"
    r = client.get("/v1/approvals", headers={"X-API-Key": "pco_nope"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_api_key"


def test_require_operator_is_still_a_plain_dependency() -> None:
    # existing routers use dependencies=[Depends(require_operator)]
    import inspect

    assert inspect.iscoroutinefunction(require_operator)


def test_cli_add_list_disable(db_url: str, engine: object) -> None:
    runner = CliRunner()
    out = runner.invoke(cli_app, ["operators", "add", "dave", "--role", "admin",
                                  "--database-url", db_url])
    assert out.exit_code == 0 and "pco_" in out.output, out.output
    out = runner.invoke(cli_app, ["operators", "list", "--database-url", db_url])
    assert "dave" in out.output and "admin" in out.output
    out = runner.invoke(cli_app, ["operators", "add", "dave", "--database-url", db_url])
    assert out.exit_code == 1 and "operator_name_taken" in out.output
    out = runner.invoke(cli_app, ["operators", "disable", "dave", "--database-url", db_url])
    assert out.exit_code == 0
