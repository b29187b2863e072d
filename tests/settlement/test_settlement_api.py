"""The operator and merchant settlement API, and the CLI: refusals are 4xx with a stable
code and change nothing; merchants see only their own cleared days."""

from __future__ import annotations

from pathlib import Path

import pytest
from cash_helpers import OPERATOR, idem  # type: ignore[import-not-found]
from fastapi.testclient import TestClient
from settle_helpers import at, fund_reserve, sale
from typer.testing import CliRunner

from paycell.clock import ManualClock
from paycell.config import Settings, get_settings
from paycell.context import Context
from paycell.gateways import payout_sim
from paycell.merchants.service import create_active_merchant
from paycell.merchants.signing import MerchantAuth
from paycell.operators.model import Operator
from paycell.settlement.cli import settle_app


def test_operator_and_merchant_api(client: TestClient, ctx: Context, clock: ManualClock,
                                   checker: Operator, tmp_path: Path) -> None:
    shop = create_active_merchant(ctx, name="Lotus Books", category="books_media")
    other = create_active_merchant(ctx, name="Other Shop", category="retail")
    at(clock, "2026-11-25")
    r = client.post("/v1/operator/settlement/rules", headers={**OPERATOR, **idem()}, json={
        "merchant_id": shop.merchant.id, "effective_from": "2026-11-01",
        "kind": "percentage", "params": {"bp": 250}, "reason": "deal"})
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (
        422, "commission_rule_invalid", "bp")
    r = client.post("/v1/operator/settlement/rules", headers={**OPERATOR, **idem()}, json={
        "merchant_id": shop.merchant.id, "effective_from": "2026-11-01",
        "kind": "percentage", "params": {"bp": 150}, "reason": "deal"})
    assert r.status_code == 202, r.text
    from paycell.operators import approvals

    approvals.approve(ctx, checker, r.json()["approval_id"])
    rules = client.get(f"/v1/operator/settlement/rules/{shop.merchant.id}", headers=OPERATOR)
    assert rules.json()[0]["params"] == {"bp": 150}
    sale(ctx, shop.merchant, 20_000)
    sale(ctx, other.merchant, 1_000)
    r = client.post("/v1/operator/settlement/clearings/2026-11-25", headers=OPERATOR)
    assert (r.status_code, r.json()["code"]) == (409, "business_date_open")
    r = client.post("/v1/operator/settlement/clearings/2026-13-01", headers=OPERATOR)
    assert (r.status_code, r.json()["code"]) == (422, "settlement_invalid")
    at(clock, "2026-11-26", "02:00")
    r = client.post("/v1/operator/settlement/clearings/2026-11-25", headers=OPERATOR)
    assert r.status_code == 200, r.text
    assert (r.json()["gross_fen"], r.json()["commission_fen"]) == (21_000, 300)
    mine = client.get("/v1/merchant/settlements", auth=MerchantAuth(
        shop.key_id, shop.secret, clock=ctx.clock))
    assert [(d["business_date"], d["net_fen"]) for d in mine.json()] == [
        ("2026-11-25", 19_700)]
    theirs = client.get("/v1/merchant/settlements/2026-11-24", auth=MerchantAuth(
        other.key_id, other.secret, clock=ctx.clock))
    assert (theirs.status_code, theirs.json()["code"]) == (404, "clearing_not_found")
    b = client.post("/v1/operator/settlement/payouts/2026-11-25", headers=OPERATOR)
    assert (b.status_code, b.json()["payout_count"]) == (200, 2), b.text
    payout_file = Path(ctx.settings.reports_dir) / "payouts" / b.json()["file"]
    result = tmp_path / "result.csv"
    payout_sim.answer(payout_file, result)
    bad = client.post("/v1/operator/settlement/payout-results", headers=OPERATOR,
                      content=b"H,nonsense\n")
    assert (bad.status_code, bad.json()["code"]) == (422, "payout_result_invalid")
    fund_reserve(ctx, 100_000)
    done = client.post("/v1/operator/settlement/payout-results", headers=OPERATOR,
                       content=result.read_bytes())
    assert done.json() == {"paid": 2, "returned": 0, "already": 0}
    paid = client.get("/v1/operator/settlement/payouts", headers=OPERATOR).json()
    assert {p["state"] for p in paid} == {"paid"}


def test_cli_run_writes_a_report(ctx: Context, clock: ManualClock, db_url: str,
                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYCELL_REPORTS_DIR", str(tmp_path / "cli"))
    get_settings.cache_clear()
    monkeypatch.setattr("paycell.config.get_settings", _fresh)
    shop = create_active_merchant(ctx, name="River Cafe", category="food_beverage")
    at(clock, "2026-11-25")
    sale(ctx, shop.merchant, 8_800)
    runner = CliRunner()
    bad = runner.invoke(settle_app, ["run", "--date", "25/11/2026", "--database-url", db_url])
    assert bad.exit_code == 2 and "settlement_invalid" in bad.output
    early = runner.invoke(settle_app, ["run", "--date", "2099-12-25", "--database-url", db_url])
    assert early.exit_code == 1 and "business_date_open" in early.output
    ok = runner.invoke(settle_app, ["run", "--date", "2026-11-25", "--database-url", db_url])
    assert ok.exit_code == 0, ok.output
    assert "net payable" in ok.output and "River Cafe" in ok.output
    lines = (tmp_path / "cli" / "settlement" / "clearing-2026-11-25.csv").read_text().splitlines()
    assert lines[0].startswith("business_date,merchant_id") and lines[-1].startswith("TOTAL")
    again = runner.invoke(settle_app, ["run", "--date", "2026-11-25", "--database-url", db_url])
    assert again.exit_code == 0 and "(0 now)" in again.output
    short = runner.invoke(settle_app, ["--date", "2026-11-25", "--database-url", db_url])
    assert short.exit_code == 0 and "(0 now)" in short.output  # `paycell settle --date D`
    assert "Usage" in runner.invoke(settle_app, []).output


def _fresh() -> Settings:
    return Settings()
