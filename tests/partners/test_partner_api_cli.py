"""Partners through the operator API and the CLI: registration with maker-checker, refused
inputs (4xx with a stable code, nothing written), attachments, fee change, accrual,
statements with paid-out items, report files. Both databases."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cash_helpers import OPERATOR, idem  # type: ignore[import-not-found]
from partner_helpers import (  # type: ignore[import-not-found]
    makers,
    merchant,
    partner,
    sales,
    terminal,
)
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from paycell.cli import app as cli_app
from paycell.config import get_settings
from paycell.crypto import unseal
from paycell.operators import approvals
from paycell.operators.service import create_operator
from paycell.partners import fees
from paycell.partners import service as ps
from paycell.partners import statements as st
from paycell.partners.errors import (
    MerchantAttachedError,
    PartnerInvalidError,
    PartnerStateError,
)
from paycell.partners.tables import partners as partners_table
from paycell.partners.tables import terminal_links
from paycell.settlement.tables import items

BODY = {"name": "West Channel", "contact_phone": "+8613900139001", "bank_name": "ICBC",
        "bank_account_holder": "West Channel Ltd.", "bank_account_number": "6222000055556666",
        "expansion_fee_fen": 60_000}


def _count(ctx) -> int:
    with ctx.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(partners_table)).scalar_one()


def test_register_through_the_api_with_a_second_operator(client, ctx) -> None:
    r = client.post("/v1/operator/partners", json=BODY, headers=OPERATOR | idem())
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["partner"]["state"] == "pending" and out["partner"]["code"].startswith("P")
    assert out["partner"]["bank_account_masked"] == "****6666"
    assert "6222000055556666" not in r.text
    with ctx.engine.connect() as conn:
        sealed = conn.execute(select(partners_table.c.bank_account_sealed)).scalar_one()
    assert "6222000055556666" not in sealed
    assert unseal(ctx.settings.secret_key, ps.BANK_PURPOSE, sealed) == b"6222000055556666"
    # root proposed it: root cannot approve; another operator can.
    aid = out["approval"]["id"]
    same = client.post(f"/v1/approvals/{aid}/approve", json={}, headers=OPERATOR | idem())
    assert same.status_code == 403 and same.json()["code"] == "approval_same_operator"
    _, checker = makers(ctx)
    approvals.approve(ctx, checker, aid)
    code = out["partner"]["code"]
    got = client.get(f"/v1/operator/partners/{code}", headers=OPERATOR).json()
    assert got["state"] == "active" and got["payable_account_id"]
    acct = ctx.ledger.account(got["payable_account_id"])
    assert acct.name == f"partner_payable:{got['id']}"


@pytest.mark.parametrize(("field", "value", "status", "code"), [
    ("expansion_fee_fen", 19_999, 422, "partner_invalid"),
    ("expansion_fee_fen", 200_001, 422, "partner_invalid"),
    ("expansion_fee_fen", "500.00", 422, "validation_error"),
    ("bank_account_number", "12ab", 422, "partner_invalid"),
    ("name", "  ", 422, "partner_invalid"),
])
def test_refused_registrations_write_nothing(client, ctx, field, value, status, code) -> None:
    r = client.post("/v1/operator/partners", json=BODY | {field: value},
                    headers=OPERATOR | idem())
    assert (r.status_code, r.json()["code"]) == (status, code)
    assert _count(ctx) == 0 and approvals.list_pending(ctx) == []


def test_attachments_fee_change_and_refusals(client, ctx) -> None:
    a, b = partner(ctx, "A"), partner(ctx, "B")
    maker, checker = makers(ctx)
    m = merchant(ctx)
    h = OPERATOR | idem()
    r = client.post(f"/v1/operator/partners/{a.code}/merchants",
                    json={"merchant_code": m.merchant.code}, headers=h)
    assert r.status_code == 200 and r.json()["changed"] is True
    again = client.post(f"/v1/operator/partners/{a.code}/merchants",
                        json={"merchant_code": m.merchant.code}, headers=OPERATOR | idem())
    assert again.json()["changed"] is False
    other = client.post(f"/v1/operator/partners/{b.code}/merchants",
                        json={"merchant_code": m.merchant.code}, headers=OPERATOR | idem())
    assert (other.status_code, other.json()["code"]) == (409, "merchant_already_attached")
    with pytest.raises(MerchantAttachedError):
        ps.attach_merchant(ctx, maker, b.id, m.merchant.code)
    missing = client.post(f"/v1/operator/partners/{a.code}/merchants",
                          json={"merchant_code": "M999999"}, headers=OPERATOR | idem())
    assert (missing.status_code, missing.json()["code"]) == (404, "merchant_not_found")
    nobody = client.get("/v1/operator/partners/P99999", headers=OPERATOR)
    assert (nobody.status_code, nobody.json()["code"]) == (404, "partner_not_found")
    # Detach from a, attach to b: history kept.
    d = client.delete(f"/v1/operator/partners/{a.code}/merchants/{m.merchant.code}",
                      headers=OPERATOR)
    assert d.status_code == 204
    d2 = client.delete(f"/v1/operator/partners/{a.code}/merchants/{m.merchant.code}",
                       headers=OPERATOR)
    assert (d2.status_code, d2.json()["code"]) == (409, "not_attached")
    assert ps.attach_merchant(ctx, maker, b.id, m.merchant.code) is True
    # Terminals: a retired one is refused.
    t = terminal(ctx, m)
    r = client.post(f"/v1/operator/partners/{a.code}/terminals",
                    json={"terminal_id": t.terminal_id}, headers=OPERATOR | idem())
    assert r.status_code == 200
    # Fee change: maker-checker, bounded.
    bad = client.post(f"/v1/operator/partners/{a.code}/fee",
                      json={"expansion_fee_fen": 10, "reason": "x"}, headers=OPERATOR | idem())
    assert (bad.status_code, bad.json()["code"]) == (422, "partner_invalid")
    with pytest.raises(PartnerInvalidError):
        ps.propose_fee_change(ctx, maker, a.id, 300_000, "too much")
    prop = ps.propose_fee_change(ctx, maker, a.id, 150_000, "better terms")
    assert ps.get_partner(ctx, a.id).expansion_fee_fen == 50_000
    approvals.approve(ctx, checker, prop.id)
    assert ps.get_partner(ctx, a.id).expansion_fee_fen == 150_000
    # A pending partner takes no attachments.
    pending, _ = ps.register_partner(ctx, maker, ps.PartnerApplication(
        name="Later", contact_phone="+8613900139002", bank_name="ICBC",
        bank_account_holder="Later Ltd.", bank_account_number="6222000077778888",
        expansion_fee_fen=20_000))
    with pytest.raises(PartnerStateError):
        ps.attach_merchant(ctx, maker, pending.id, merchant(ctx).merchant.code)
    bad_month = client.post("/v1/operator/partner-fees/maintenance", json={"month": "2026-1"},
                            headers=OPERATOR)
    assert (bad_month.status_code, bad_month.json()["code"]) == (422, "month_invalid")
    future = client.post("/v1/operator/partner-fees/maintenance", json={"month": "2026-01"},
                         headers=OPERATOR)
    assert (future.status_code, future.json()["code"]) == (409, "month_not_over")


def test_statement_shows_fees_and_what_was_paid_out(client, ctx, clock) -> None:
    clock.set(datetime(2026, 3, 1, tzinfo=UTC))
    p = partner(ctx, "Stat", fee=100_000)
    maker, _ = makers(ctx)
    m = merchant(ctx)
    ps.attach_merchant(ctx, maker, p.id, m.merchant.code)
    ps.attach_terminal(ctx, maker, p.id, terminal(ctx, m).terminal_id)
    sales(ctx, m, 30)
    clock.set(datetime(2026, 6, 1, tzinfo=UTC))  # 92 days after activation
    assert len(fees.check_expansion(ctx).created) == 1
    assert len(fees.accrue_maintenance(ctx, "2026-05").created) == 1
    # A payout (part A) takes the maintenance item.
    with ctx.engine.begin() as conn:
        conn.execute(update(items).where(items.c.kind == "maintenance").values(payout_id=7))
    s = st.partner_statement(ctx, p.id, "2026-05")
    per = ctx.settings.pos_maintenance_fen
    assert (s.totals.merchants, s.totals.terminals) == (1, 1)
    assert (s.totals.maintenance_fen, s.totals.paid_out_fen, s.totals.expansion_fen) == (
        per, per, 0)
    june = client.get(f"/v1/operator/partners/{p.code}/statements/2026-06",
                      headers=OPERATOR).json()
    assert june["totals"]["expansion_fen"] == 100_000 and june["totals"]["unpaid_fen"] == 100_000
    assert june["merchants"][0]["expansion_fee_paid"] is True
    summary = client.get("/v1/operator/partners/statements/2026-05", headers=OPERATOR).json()
    assert summary["partners"][0]["paid_out_fen"] == per
    path = st.write_statement(ctx, s)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("section,") and lines[-1].startswith("total,")
    bad = client.get(f"/v1/operator/partners/{p.code}/statements/May", headers=OPERATOR)
    assert (bad.status_code, bad.json()["code"]) == (422, "month_invalid")


def test_cli(client, ctx, clock, db_url, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PAYCELL_REPORTS_DIR", str(tmp_path / "cli-reports"))
    get_settings.cache_clear()
    try:
        create_operator(ctx, "alice", "operator")
        create_operator(ctx, "bob", "operator")
        m = merchant(ctx, "Cli Shop")
        t = terminal(ctx, m)
        runner = CliRunner(env={"COLUMNS": "200"})
        url = ["--database-url", db_url]
        out = runner.invoke(cli_app, ["partners", "add", "Cli Channel", "--fee", "300.00",
                                      "--phone", "+8613900139003", "--bank-name", "ICBC",
                                      "--holder", "Cli Ltd.", "--account", "6222000099990000",
                                      "--as", "alice", *url])
        assert out.exit_code == 0, out.output
        aid = approvals.list_pending(ctx)[0].id
        assert runner.invoke(cli_app, ["operators", "approve", str(aid), "--as", "bob",
                                       *url]).exit_code == 0
        code = ps.list_partners(ctx)[0].code
        bad = runner.invoke(cli_app, ["partners", "add", "X", "--fee", "5000", "--phone",
                                      "+8613900139003", "--bank-name", "B", "--holder", "H",
                                      "--account", "62220000", "--as", "alice", *url])
        assert bad.exit_code == 1 and "partner_invalid" in bad.output
        for args in (["attach-merchant", code, m.merchant.code],
                     ["attach-terminal", code, t.terminal_id]):
            out = runner.invoke(cli_app, ["partners", *args, "--as", "alice", *url])
            assert out.exit_code == 0 and "attached to" in out.output, out.output
        out = runner.invoke(cli_app, ["partners", "list", *url])
        assert out.exit_code == 0 and code in out.output
        # The CLI ran on the real clock (November 2026): date the attachment back to the
        # test's clock so that February counts it.
        with ctx.engine.begin() as conn:
            conn.execute(update(terminal_links).values(attached_at=clock.now_us()))
        out = runner.invoke(cli_app, ["partners", "accrue", "--month", "2026-02", *url])
        assert out.exit_code == 0 and "1 partners accrued, 55.00 CNY" in out.output, out.output
        again = runner.invoke(cli_app, ["partners", "accrue", "--month", "2026-02", *url])
        assert "0 partners accrued" in again.output
        assert (tmp_path / "cli-reports" / "partners" / "partners-2026-02.csv").exists()
        out = runner.invoke(cli_app, ["partners", "check-expansion", *url])
        assert out.exit_code == 0 and "0 expansion fees" in out.output, out.output
        out = runner.invoke(cli_app, ["partners", "statement", "--month", "2026-02", *url])
        assert out.exit_code == 0 and "█" in out.output and "55.00 CNY" in out.output
        out = runner.invoke(cli_app, ["partners", "statement", "--month", "2026-02",
                                      "--partner", code, *url])
        assert out.exit_code == 0 and t.terminal_id in out.output
        assert (tmp_path / "cli-reports" / "partners" / f"partner-{code}-2026-02.csv").exists()
        bad = runner.invoke(cli_app, ["partners", "accrue", "--month", "2099-01", *url])
        assert bad.exit_code == 1 and "month_not_over" in bad.output
    finally:
        get_settings.cache_clear()
