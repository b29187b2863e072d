"""Maker-checker approvals, on both databases: a test action registered here, proposed by
one operator and approved by another (the handler runs once and its answer is kept), the
proposer refused, rejection, a refusing handler (``failed``), a crashing one (back to
``pending``), concurrent approvers, and the CLI."""

from __future__ import annotations

import threading
from typing import Any

import pytest
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
from typer.testing import CliRunner

from paycell.cli import app as cli_app
from paycell.clock import ManualClock
from paycell.context import Context
from paycell.errors import ConflictError, PaycellError
from paycell.operators import approvals
from paycell.operators.model import Approval, Operator

__all__ = ["client", "clock", "ctx", "settings"]  # fixtures, imported for pytest
calls: list[dict[str, Any]] = []


class RefusedError(ConflictError):
    code = "test_refused"


def handler(ctx: Context, payload: dict[str, Any], approval: Approval,
            approver: Operator) -> dict[str, Any]:
    calls.append(payload)
    if payload.get("refuse"):
        raise RefusedError("the handler says no")
    if payload.get("crash"):
        raise RuntimeError("boom")
    if payload.get("slow"):
        threading.Event().wait(0.3)
    return {"done": payload.get("n"), "by": approver.name, "proposer": approval.proposed_by_name}


def check(ctx: Context, subject: str, payload: dict[str, Any]) -> None:
    if payload.get("impossible"):
        raise RefusedError("this could never be approved")


approvals.register("test_action", handler, check=check)


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


def test_propose_then_another_operator_approves(ctx: Context) -> None:
    alice, _ = operator(ctx, "alice")
    bob, _ = operator(ctx, "bob")
    a = approvals.propose(ctx, alice, "test_action", "thing:1", {"n": 7}, "please")
    assert a.state == "pending" and a.proposed_by_name == "alice"
    assert [p.id for p in approvals.list_pending(ctx)] == [a.id]
    with pytest.raises(approvals.ApprovalSameOperatorError) as refused:
        approvals.approve(ctx, alice, a.id)
    assert refused.value.code == "approval_same_operator" and calls == []
    done = approvals.approve(ctx, bob, a.id)
    assert done.state == "approved" and done.decided_by_name == "bob"
    assert done.result == {"done": 7, "by": "bob", "proposer": "alice"}
    assert calls == [{"n": 7}]
    with pytest.raises(approvals.ApprovalNotPendingError):
        approvals.approve(ctx, bob, a.id)
    assert calls == [{"n": 7}] and approvals.list_pending(ctx) == []
    # the subject is free again for a new proposal
    approvals.propose(ctx, alice, "test_action", "thing:1", {"n": 8}, "again")


def test_refusals_at_proposal_write_nothing(ctx: Context) -> None:
    alice, _ = operator(ctx, "alice")
    audrey, _ = operator(ctx, "audrey", "auditor")
    cases: list[tuple[Any, str]] = [
        (lambda: approvals.propose(ctx, alice, "no_such_action", "x", {}, "r"),
         "approval_action_unknown"),
        (lambda: approvals.propose(ctx, alice, "test_action", "x", {}, "  "),
         "approval_invalid"),
        (lambda: approvals.propose(ctx, alice, "test_action", "x", {"t": {1, 2}}, "r"),
         "approval_invalid"),
        (lambda: approvals.propose(ctx, alice, "test_action", "x", {"impossible": 1}, "r"),
         "test_refused"),
        (lambda: approvals.propose(ctx, audrey, "test_action", "x", {}, "r"),
         "operator_role_forbidden"),
    ]
    for call, code in cases:
        with pytest.raises(PaycellError) as exc:
            call()
        assert exc.value.code == code
    assert approvals.list_approvals(ctx) == []
    approvals.propose(ctx, alice, "test_action", "x", {}, "r")
    with pytest.raises(approvals.ApprovalPendingError):
        approvals.propose(ctx, alice, "test_action", "x", {"other": 1}, "r")


def test_reject_and_withdraw(ctx: Context) -> None:
    alice, _ = operator(ctx, "alice")
    bob, _ = operator(ctx, "bob")
    a = approvals.propose(ctx, alice, "test_action", "t:1", {}, "r")
    r = approvals.reject(ctx, bob, a.id, "not now")
    assert r.state == "rejected" and r.note == "not now" and r.decided_by_name == "bob"
    with pytest.raises(approvals.ApprovalNotPendingError):
        approvals.approve(ctx, bob, a.id)
    b = approvals.propose(ctx, alice, "test_action", "t:1", {}, "r")
    assert approvals.reject(ctx, alice, b.id, "withdrawn").state == "rejected"
    assert calls == []
    with pytest.raises(approvals.ApprovalNotFoundError):
        approvals.reject(ctx, bob, 424242, "x")


def test_a_refusing_handler_fails_the_approval(ctx: Context) -> None:
    alice, _ = operator(ctx, "alice")
    bob, _ = operator(ctx, "bob")
    a = approvals.propose(ctx, alice, "test_action", "t:2", {"refuse": True}, "r")
    with pytest.raises(RefusedError):
        approvals.approve(ctx, bob, a.id)
    failed = approvals.get_approval(ctx, a.id)
    assert failed.state == "failed" and failed.result == {"error": "test_refused",
                                                          "message": "the handler says no"}


def test_a_crashing_handler_leaves_it_pending(ctx: Context) -> None:
    alice, _ = operator(ctx, "alice")
    bob, _ = operator(ctx, "bob")
    a = approvals.propose(ctx, alice, "test_action", "t:3", {"crash": True}, "r")
    with pytest.raises(RuntimeError):
        approvals.approve(ctx, bob, a.id)
    back = approvals.get_approval(ctx, a.id)
    assert back.state == "pending" and back.decided_by is None


def test_an_interrupted_approval_is_taken_over_when_stale(ctx: Context,
                                                          clock: ManualClock) -> None:
    from sqlalchemy import update

    from paycell.operators.tables import approvals as table

    alice, _ = operator(ctx, "alice")
    bob, _ = operator(ctx, "bob")
    a = approvals.propose(ctx, alice, "test_action", "t:4", {"n": 1}, "r")
    with ctx.engine.begin() as conn:  # as if a process died while running the handler
        conn.execute(update(table).where(table.c.id == a.id).values(state="approving"))
    with pytest.raises(approvals.ApprovalNotPendingError):
        approvals.approve(ctx, bob, a.id)
    clock.advance(seconds=approvals.STALE_AFTER_S + 1)
    assert approvals.approve(ctx, bob, a.id).state == "approved"


def test_two_approvers_at_once_run_the_handler_once(ctx: Context) -> None:
    alice, _ = operator(ctx, "alice")
    bob, _ = operator(ctx, "bob")
    carol, _ = operator(ctx, "carol")
    a = approvals.propose(ctx, alice, "test_action", "t:5", {"slow": True}, "r")
    barrier, outcomes = threading.Barrier(2), []

    def go(who: Operator) -> None:
        barrier.wait()
        try:
            outcomes.append(approvals.approve(ctx, who, a.id).state)
        except approvals.ApprovalNotPendingError:
            outcomes.append("refused")

    threads = [threading.Thread(target=go, args=(w,)) for w in (bob, carol)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["approved", "refused"] and len(calls) == 1


def test_approvals_over_http(client: TestClient, ctx: Context) -> None:
    _, alice = operator(ctx, "alice")
    _, bob = operator(ctx, "bob")
    r = client.post("/v1/approvals", json={"action": "test_action", "subject": "t:6",
                                           "payload": {"n": 3}, "reason": "r"},
                    headers=idem(**alice))
    assert r.status_code == 201, r.text
    aid = r.json()["id"]
    pending = client.get("/v1/approvals?state=pending", headers=ROOT).json()["items"]
    assert [p["id"] for p in pending] == [aid]
    r = client.post(f"/v1/approvals/{aid}/approve", headers=idem(**alice))
    assert r.status_code == 403 and r.json()["code"] == "approval_same_operator"
    h = idem(**bob)
    r = client.post(f"/v1/approvals/{aid}/approve", headers=h)
    assert r.status_code == 200 and r.json()["result"]["done"] == 3
    again = client.post(f"/v1/approvals/{aid}/approve", headers=h)  # a retry
    assert again.json() == r.json() and len(calls) == 1
    r = client.post(f"/v1/approvals/{aid}/reject", json={"note": "late"}, headers=idem(**bob))
    assert r.status_code == 409 and r.json()["code"] == "approval_not_pending"
    r = client.post("/v1/approvals", json={"action": "nope", "subject": "x", "reason": "r"},
                    headers=idem(**alice))
    assert r.status_code == 422 and r.json()["code"] == "approval_action_unknown"
    assert client.get("/v1/approvals/424242", headers=ROOT).status_code == 404


def test_cli_lists_and_approves(db_url: str, ctx: Context) -> None:
    alice, _ = operator(ctx, "alice")
    operator(ctx, "bob")
    a = approvals.propose(ctx, alice, "test_action", "t:7", {"n": 5}, "viacli")
    runner = CliRunner()
    out = runner.invoke(cli_app, ["operators", "approvals", "--database-url", db_url])
    assert out.exit_code == 0 and "viacli" in out.output, out.output
    out = runner.invoke(cli_app, ["operators", "approve", str(a.id), "--as", "alice",
                                  "--database-url", db_url])
    assert out.exit_code == 1 and "approval_same_operator" in out.output
    out = runner.invoke(cli_app, ["operators", "approve", str(a.id), "--as", "bob",
                                  "--database-url", db_url])
    assert out.exit_code == 0 and "approved" in out.output, out.output
    out = runner.invoke(cli_app, ["operators", "approvals", "--all", "--database-url", db_url])
    assert "approved" in out.output
