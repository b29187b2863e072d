"""Cash at agent outlets over HTTP, on both databases: agents and their keys, float top-ups,
cash-in within the float, idempotent references, each agent seeing only its own data."""

from __future__ import annotations

import threading
from typing import Any

from cash_helpers import (  # type: ignore[import-not-found]
    OPERATOR,
    balance,
    client,
    clock,
    ctx,
    idem,
    settings,
    wallet,
)
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from paycell.cli import app as cli_app
from paycell.context import Context
from paycell.errors import PaycellError
from paycell.funding import agents
from paycell.ledger.chart import Code, TransferCode, system_account

__all__ = ["client", "clock", "ctx", "settings"]  # fixtures, imported for pytest
AGENTS = "/v1/operator/agents"


def make_agent(client: TestClient, code: str) -> tuple[int, dict[str, str]]:
    r = client.post(AGENTS, json={"code": code, "name": f"Outlet {code}",
                                  "location": "Tianhe, Guangzhou"}, headers=idem(**OPERATOR))
    assert r.status_code == 201, r.text
    return r.json()["agent"]["id"], {"X-Agent-Key": r.json()["api_key"]}


def cash_in(client: TestClient, agent: dict[str, str], msisdn: str, amount: int,
            reference: str, **headers: str) -> Any:
    return client.post("/v1/agent/cash-in", json={"msisdn": msisdn, "amount_fen": amount,
                                                  "reference": reference},
                       headers={**agent, **(headers or idem())})


def agent_with_float(client: TestClient, code: str, float_fen: int) -> tuple[int, dict[str, str]]:
    agent_id, key = make_agent(client, code)
    r = client.post(f"{AGENTS}/{agent_id}/float", headers=idem(**OPERATOR),
                    json={"amount_fen": float_fen, "reference": f"slip-{code}"})
    assert r.status_code == 201, r.text
    return agent_id, key


def test_register_an_agent_and_fund_its_float(client: TestClient, ctx: Context) -> None:
    key = idem(**OPERATOR)
    body = {"code": "GZ-TH-001", "name": "Tianhe hall", "location": "Guangzhou"}
    r = client.post(AGENTS, json=body, headers=key)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["api_key"].startswith("agk_") and created["agent"]["float_fen"] == 0
    replay = client.post(AGENTS, json=body, headers=key)
    assert replay.json()["api_key"] is None and not replay.json()["api_key_shown"]
    assert replay.json()["agent"]["id"] == created["agent"]["id"]
    dup = client.post(AGENTS, json=body, headers=idem(**OPERATOR))
    assert dup.status_code == 409 and dup.json()["code"] == "agent_code_taken"

    agent_id = created["agent"]["id"]
    slip = {"amount_fen": 1_000_000, "reference": "ICBC-0001"}
    first = client.post(f"{AGENTS}/{agent_id}/float", json=slip, headers=idem(**OPERATOR))
    assert first.status_code == 201, first.text
    # The deposit reference is idempotent by itself, whatever the Idempotency-Key.
    again = client.post(f"{AGENTS}/{agent_id}/float", json=slip, headers=idem(**OPERATOR))
    assert again.json()["id"] == first.json()["id"]
    other = client.post(f"{AGENTS}/{agent_id}/float", headers=idem(**OPERATOR),
                        json={**slip, "amount_fen": 5})
    assert other.status_code == 409 and other.json()["code"] == "agent_reference_reused"
    me = client.get("/v1/agent", headers={"X-Agent-Key": created["api_key"]}).json()
    assert (me["code"], me["float_fen"], me["available_fen"]) == ("GZ-TH-001", 1_000_000,
                                                                  1_000_000)
    t = ctx.ledger.transfer(first.json()["transfer_id"])
    reserve = system_account(ctx.ledger, Code.CUSTODY_RESERVE)
    assert t is not None and t.code == TransferCode.AGENT_FLOAT
    assert t.debit_account_id == reserve.id
    assert client.get(f"{AGENTS}/{agent_id}", headers=OPERATOR).json()["float_fen"] == 1_000_000
    assert [a["code"] for a in client.get(AGENTS, headers=OPERATOR).json()["items"]] == [
        "GZ-TH-001"]
    missing = client.post(f"{AGENTS}/999/float", json=slip, headers=idem(**OPERATOR))
    assert missing.status_code == 404 and missing.json()["code"] == "agent_not_found"


def test_cash_in_cannot_exceed_the_float(client: TestClient, ctx: Context) -> None:
    _, agent = agent_with_float(client, "A1", 30_000)
    sub, _ = wallet(ctx)
    r = cash_in(client, agent, sub.msisdn, 20_000, "r1")
    assert r.status_code == 201, r.text
    assert balance(ctx, sub) == 20_000
    r = cash_in(client, agent, sub.msisdn, 10_001, "r2")
    assert r.status_code == 409 and r.json()["code"] == "agent_float_insufficient"
    assert r.json()["available_fen"] == 10_000
    r = cash_in(client, agent, sub.msisdn, 10_000, "r3")
    assert r.status_code == 201
    me = client.get("/v1/agent", headers=agent).json()
    assert me["float_fen"] == 0 and balance(ctx, sub) == 30_000
    t = ctx.ledger.transfer(r.json()["transfer_id"])
    assert t is not None and t.code == TransferCode.CASH_IN


def test_concurrent_cash_ins_never_overdraw_the_float(client: TestClient, ctx: Context) -> None:
    agent_id, _ = agent_with_float(client, "A1", 10_000)
    agent = agents.get_agent(ctx, agent_id)
    subs = [wallet(ctx)[0] for _ in range(3)]
    start = threading.Barrier(len(subs))
    outcomes: list[str] = []

    def attempt(i: int) -> None:
        start.wait()
        try:
            agents.cash_in(ctx, agent, subs[i].msisdn, 6_000, f"c{i}")
            outcomes.append("ok")
        except PaycellError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(subs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(outcomes) == ["agent_float_insufficient"] * 2 + ["ok"]
    assert sum(balance(ctx, s) for s in subs) == 6_000


def test_agent_reference_is_idempotent(client: TestClient, ctx: Context) -> None:
    _, agent = agent_with_float(client, "A1", 50_000)
    sub, _ = wallet(ctx)
    first = cash_in(client, agent, sub.msisdn, 10_000, "till-7/0001")
    assert first.status_code == 201, first.text
    # A new Idempotency-Key, the same reference: the first cash-in, nothing moves again.
    again = cash_in(client, agent, sub.msisdn.removeprefix("+86"), 10_000, "till-7/0001")
    assert again.status_code == 201 and again.json() == first.json()
    assert balance(ctx, sub) == 10_000
    for msisdn, amount in ((sub.msisdn, 9_999), (wallet(ctx)[0].msisdn, 10_000)):
        r = cash_in(client, agent, msisdn, amount, "till-7/0001")
        assert r.status_code == 409 and r.json()["code"] == "agent_reference_reused"
    # The same Idempotency-Key replays the stored answer.
    headers = idem()
    a = cash_in(client, agent, sub.msisdn, 500, "r-2", **headers)
    b = cash_in(client, agent, sub.msisdn, 500, "r-2", **headers)
    assert b.headers["Idempotent-Replayed"] == "true" and a.json() == b.json()
    assert balance(ctx, sub) == 10_500


def test_each_agent_sees_only_its_own(client: TestClient, ctx: Context) -> None:
    _, a = agent_with_float(client, "A", 50_000)
    _, b = agent_with_float(client, "B", 70_000)
    sub, _ = wallet(ctx)
    assert cash_in(client, a, sub.msisdn, 1_000, "same-ref").status_code == 201
    assert cash_in(client, b, sub.msisdn, 2_000, "same-ref").status_code == 201  # per agent
    seen_a = client.get("/v1/agent/transactions", headers=a).json()["items"]
    seen_b = client.get("/v1/agent/transactions", headers=b).json()["items"]
    assert [(t["kind"], t["amount_fen"]) for t in seen_a] == [("cash_in", 1_000),
                                                               ("float_topup", 50_000)]
    assert [(t["kind"], t["amount_fen"]) for t in seen_b] == [("cash_in", 2_000),
                                                               ("float_topup", 70_000)]
    assert client.get("/v1/agent", headers=b).json()["float_fen"] == 68_000
    page = client.get("/v1/agent/transactions?limit=1", headers=a).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = client.get(f"/v1/agent/transactions?cursor={page['next_cursor']}", headers=a).json()
    assert [t["kind"] for t in rest["items"]] == ["float_topup"] and rest["next_cursor"] is None
    # A's cursor is just a position in A's list: B reading with it still sees only B's.
    with_a_cursor = client.get(f"/v1/agent/transactions?cursor={page['next_cursor']}",
                               headers=b).json()["items"]
    assert all(t["reference"] != "slip-A" for t in with_a_cursor)
    for headers, code in (({}, "authentication_required"),
                          ({"X-Agent-Key": "agk_nope"}, "agent_key_invalid"),
                          (OPERATOR, "authentication_required")):
        r = client.get("/v1/agent", headers=headers)
        assert r.status_code == 401 and r.json()["code"] == code
    # An agent key is not an operator key.
    assert client.get(AGENTS, headers={"X-API-Key": a["X-Agent-Key"]}).status_code == 401


def test_cash_in_refusals_move_nothing(client: TestClient, ctx: Context) -> None:
    _, agent = agent_with_float(client, "A1", 200_000)
    r = cash_in(client, agent, "+8613900000000", 100, "x1")
    assert r.status_code == 404 and r.json()["code"] == "recipient_not_registered"
    r = cash_in(client, agent, "12345", 100, "x2")
    assert r.status_code == 422 and r.json()["code"] == "invalid_msisdn"
    r = cash_in(client, agent, "+8613900000000", 0, "x3")
    assert r.status_code == 422
    r = cash_in(client, agent, "+8613900000000", 100, "bad ref")
    assert r.status_code == 422
    sub, _ = wallet(ctx)
    r = cash_in(client, agent, sub.msisdn, 100_001, "x4")  # tier 0 holds 1,000 CNY at most
    assert r.status_code == 409 and r.json()["code"] == "balance_cap_exceeded"
    assert client.get("/v1/agent", headers=agent).json()["float_fen"] == 200_000
    assert len(client.get("/v1/agent/transactions", headers=agent).json()["items"]) == 1


def test_cli_agents(client: TestClient, db_url: str) -> None:
    runner = CliRunner()
    r = runner.invoke(cli_app, ["agents", "create", "--code", "SZ-01", "--name", "Futian",
                                "--location", "Shenzhen", "--database-url", db_url])
    assert r.exit_code == 0, r.output
    key = r.output.split("shown once:")[1].split()[0]
    r = runner.invoke(cli_app, ["agents", "float", "1", "--amount", "500.00",
                                "--reference", "slip-1", "--database-url", db_url])
    assert r.exit_code == 0 and "500.00" in r.output, r.output
    assert "SZ-01" in runner.invoke(cli_app, ["agents", "list", "--database-url", db_url]).output
    assert client.get("/v1/agent", headers={"X-Agent-Key": key}).json()["float_fen"] == 50_000
    r = runner.invoke(cli_app, ["agents", "float", "9", "--amount", "1.00", "--reference", "s",
                                "--database-url", db_url])
    assert r.exit_code == 1 and "agent_not_found" in r.output
