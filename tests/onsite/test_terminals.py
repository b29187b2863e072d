"""POS terminals: registration with the deposit in the ledger, states, sign-on and batches,
the MAC on every terminal message, the operator API and the CLI. Both databases; the
ledger is audited after each test (the ``client`` fixture)."""

from __future__ import annotations

import re

import pytest
from cash_helpers import OPERATOR, client, clock, ctx, idem, settings  # type: ignore[import-not-found]  # noqa: F401
from pos_helpers import balance, pos, shop, terminal  # type: ignore[import-not-found]
from sqlalchemy import select
from typer.testing import CliRunner

from paycell.cli import app as cli_app
from paycell.ledger.chart import TransferCode
from paycell.merchants.errors import StoreNotFoundError
from paycell.onsite import terminal_auth
from paycell.onsite import terminals as tm
from paycell.onsite.pos_sim import PosError, PosSim
from paycell.onsite.terminal_tables import terminals as terminals_table

DEPOSIT = 100_000


def test_register_takes_the_deposit_in_the_ledger(client, ctx) -> None:  # noqa: F811
    m = shop(ctx, payable_fen=150_000)
    payable = m.merchant.payable_account_id
    reg = terminal(ctx, m)
    t = reg.terminal
    assert re.fullmatch(r"T[0-9]{8}", t.terminal_id) and re.fullmatch(r"[0-9A-F]{32}",
                                                                         reg.key_hex)
    assert (t.state, t.deposit_fen, t.batch_no, t.batch_open) == ("active", DEPOSIT, 0, False)
    assert balance(ctx, payable) == 50_000
    assert balance(ctx, t.deposit_account_id) == DEPOSIT
    tr = ctx.ledger.transfer(f"terminal-deposit:{t.terminal_id}")
    assert tr is not None and tr.code == TransferCode.TERMINAL_DEPOSIT
    assert (tr.debit_account_id, tr.credit_account_id, tr.amount) == (
        payable, t.deposit_account_id, DEPOSIT)
    with ctx.engine.connect() as conn:  # the key is sealed at rest, readable only by us
        sealed = conn.execute(select(terminals_table.c.key_sealed)).scalar_one()
    assert reg.key_hex not in sealed and reg.key_hex.lower() not in sealed
    assert tm.terminal_key(ctx, t).hex().upper() == reg.key_hex
    # A second terminal's deposit is more than is left: refused, nothing written.
    with pytest.raises(tm.TerminalDepositInsufficientError) as exc:
        terminal(ctx, m)
    assert exc.value.detail["required_fen"] == DEPOSIT
    assert balance(ctx, payable) == 50_000 and len(tm.list_terminals(ctx)) == 1
    with pytest.raises(StoreNotFoundError):
        tm.register_terminal(ctx, m.merchant.code, "NOPE", "test")


def test_states_and_retirement_returns_the_deposit(client, ctx) -> None:  # noqa: F811
    m = shop(ctx, payable_fen=DEPOSIT)
    reg = terminal(ctx, m)
    tid = reg.terminal.terminal_id
    p = pos(client, ctx, m, reg=reg)
    assert tm.change_state(ctx, tid, "suspend", "test").state == "suspended"
    with pytest.raises(PosError) as exc:
        p.sign_on()
    assert exc.value.status == 403 and exc.value.problem["code"] == "terminal_not_active"
    assert tm.change_state(ctx, tid, "resume", "test").state == "active"
    assert p.sign_on() == 1
    retired = tm.change_state(ctx, tid, "retire", "test")
    assert retired.state == "retired" and not retired.batch_open
    assert tm.change_state(ctx, tid, "retire", "test").state == "retired"  # idempotent
    assert balance(ctx, m.merchant.payable_account_id) == DEPOSIT
    assert balance(ctx, reg.terminal.deposit_account_id) == 0
    with pytest.raises(tm.TerminalStateError):
        tm.change_state(ctx, tid, "resume", "test")
    assert tm.batch_totals(ctx, tm.get_terminal(ctx, tid), 1).state == "closed"


def test_sign_on_opens_batches_and_close_freezes_totals(client, ctx) -> None:  # noqa: F811
    m = shop(ctx)
    p = pos(client, ctx, m, sign_on=False)
    assert p.sign_on() == 1 and p.sign_on() == 1  # a repeated sign-on answers the open batch
    closed = p.close_batch()
    assert closed["state"] == "closed" and closed["balanced"] is True
    assert closed["approved_count"] == 0 and closed["net_fen"] == 0
    with pytest.raises(PosError) as exc:  # the closed batch takes no more messages
        p._post("voids", {"batch_no": 1, "stan": "000001"})
    assert exc.value.status == 409 and exc.value.problem["code"] == "batch_not_open"
    assert p.sign_on() == 2
    again = p._post("batch/close", {"batch_no": 1})  # closing a closed batch: its totals
    assert again["batch_no"] == 1 and again["state"] == "closed"


def test_terminal_messages_need_the_right_mac(client, ctx) -> None:  # noqa: F811
    m = shop(ctx)
    reg = terminal(ctx, m)
    tid = reg.terminal.terminal_id
    wrong = PosSim(client, tid, "00" * 16, m.merchant.code, "S1", clock=ctx.clock)
    with pytest.raises(PosError) as exc:
        wrong.sign_on()
    assert exc.value.status == 401 and exc.value.problem["code"] == "terminal_mac_invalid"
    unknown = PosSim(client, "T99999999", reg.key_hex, m.merchant.code, "S1", clock=ctx.clock)
    with pytest.raises(PosError) as exc:
        unknown.sign_on()
    assert exc.value.problem["code"] == "terminal_unknown"
    r = client.post("/v1/terminal/sign-on", json={})
    assert r.status_code == 401 and r.json()["code"] == "authentication_required"
    r = client.post("/v1/terminal/sign-on", json={}, headers={"X-Terminal-Id": "T1"})
    assert r.status_code == 401 and r.json()["code"] == "terminal_auth_required"
    # A MACed request replayed as is (same nonce) is refused; a changed body breaks the MAC.
    key = bytes.fromhex(reg.key_hex)
    ts = str(ctx.clock.now_us() // 1_000_000)
    body = b"{}"
    headers = {"X-Terminal-Id": tid, "X-Terminal-Timestamp": ts, "X-Terminal-Nonce": "n0nce-123",
               "X-Terminal-MAC": terminal_auth.message_mac(
                   key, "POST", "/v1/terminal/sign-on", tid, ts, "n0nce-123", body),
               "Content-Type": "application/json"}
    assert client.post("/v1/terminal/sign-on", content=body, headers=headers).status_code == 200
    r = client.post("/v1/terminal/sign-on", content=body, headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "terminal_nonce_replayed"
    r = client.post("/v1/terminal/sign-on", content=b'{"x": 1}',
                    headers={**headers, "X-Terminal-Nonce": "other-nonce"})
    assert r.status_code == 401 and r.json()["code"] == "terminal_mac_invalid"
    ctx.clock.advance(seconds=3600)  # type: ignore[attr-defined]
    stale = PosSim(client, tid, reg.key_hex, m.merchant.code, "S1")  # system time: far off
    with pytest.raises(PosError) as exc:
        stale.sign_on()
    assert exc.value.problem["code"] == "terminal_timestamp_stale"


def test_operator_api(client, ctx) -> None:  # noqa: F811
    m = shop(ctx, payable_fen=150_000)
    code = m.merchant.code
    key = idem()
    body = {"merchant_code": code, "store_code": "S1"}
    r = client.post("/v1/operator/terminals", json=body, headers={**OPERATOR, **key})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["key_shown"] and len(made["terminal_key"]) == 32
    again = client.post("/v1/operator/terminals", json=body, headers={**OPERATOR, **key})
    assert again.status_code == 201 and again.json()["terminal_key"] is None
    assert again.json()["terminal_id"] == made["terminal_id"]
    r = client.post("/v1/operator/terminals", json=body, headers={**OPERATOR, **idem()})
    assert r.status_code == 409 and r.json()["code"] == "terminal_deposit_insufficient"
    assert client.post("/v1/operator/terminals", json=body, headers=idem()).status_code == 401
    listed = client.get(f"/v1/operator/terminals?merchant_code={code}", headers=OPERATOR).json()
    assert [t["terminal_id"] for t in listed["items"]] == [made["terminal_id"]]
    tid = made["terminal_id"]
    r = client.post(f"/v1/operator/terminals/{tid}/suspend", headers=OPERATOR)
    assert r.status_code == 200 and r.json()["state"] == "suspended"
    assert client.get(f"/v1/operator/terminals/{tid}", headers=OPERATOR).json()["state"] == (
        "suspended")
    r = client.get("/v1/operator/terminals/T00000000", headers=OPERATOR)
    assert r.status_code == 404 and r.json()["code"] == "terminal_not_found"


def test_cli(client, ctx, db_url) -> None:  # noqa: F811
    m = shop(ctx)
    runner = CliRunner(env={"COLUMNS": "200"})
    url = ["--database-url", db_url]
    out = runner.invoke(cli_app, ["onsite", "register-terminal", "--merchant", m.merchant.code,
                                  "--store", "S1", *url])
    assert out.exit_code == 0, out.output
    tid = re.search(r"terminal (T[0-9]{8}) registered", out.output).group(1)  # type: ignore[union-attr]
    assert re.search(r"shown once\): [0-9A-F]{32}", out.output)
    out = runner.invoke(cli_app, ["onsite", "terminals", "--merchant", m.merchant.code, *url])
    assert out.exit_code == 0 and tid in out.output
    p = pos(client, ctx, m)
    out = runner.invoke(cli_app, ["onsite", "batch-totals", p.terminal_id, *url])
    assert out.exit_code == 0 and "batch 1 (open)" in out.output, out.output
    out = runner.invoke(cli_app, ["onsite", "register-terminal", "--merchant", m.merchant.code,
                                  "--store", "S1", *url])
    assert out.exit_code == 1 and "terminal_deposit_insufficient" in out.output


def test_a_rerun_registration_with_its_request_key_finds_its_terminal(
        client, ctx) -> None:  # noqa: F811
    """What a stale idempotency claim taken over after a crash does: the registration runs
    again. With its request key it answers the first terminal (key included): one terminal,
    one deposit. Another key is another terminal."""
    m = shop(ctx, payable_fen=3 * DEPOSIT)
    payable = m.merchant.payable_account_id
    first = tm.register_terminal(ctx, m.merchant.code, "S1", "test", request_key="api:k1")
    again = tm.register_terminal(ctx, m.merchant.code, "S1", "test", request_key="api:k1")
    assert again == first and again.key_hex == first.key_hex
    assert balance(ctx, payable) == 2 * DEPOSIT and len(tm.list_terminals(ctx)) == 1
    other = tm.register_terminal(ctx, m.merchant.code, "S1", "test", request_key="api:k2")
    assert other.terminal.terminal_id != first.terminal.terminal_id
    assert balance(ctx, payable) == DEPOSIT and len(tm.list_terminals(ctx)) == 2


@pytest.mark.postgres_only
def test_concurrent_registrations_with_one_request_key_make_one_terminal(
        client, ctx) -> None:  # noqa: F811
    import threading

    m = shop(ctx, payable_fen=4 * DEPOSIT)
    barrier, out, errors = threading.Barrier(4), [], []

    def go() -> None:
        barrier.wait()
        try:
            out.append(tm.register_terminal(ctx, m.merchant.code, "S1", "test",
                                            request_key="api:same"))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(out) == 4
    assert len({r.terminal.terminal_id for r in out}) == 1
    assert len({r.key_hex for r in out}) == 1
    assert len(tm.list_terminals(ctx)) == 1
    assert balance(ctx, m.merchant.payable_account_id) == 3 * DEPOSIT
