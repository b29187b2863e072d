"""``paycell reconcile`` on a real database: import (GBK, summary, chart, report), the same
file again, items, resolve with two operators, bill, simulate."""

from __future__ import annotations

from pathlib import Path

from cash_helpers import fund, wallet  # type: ignore[import-not-found]
from recon_helpers import operator, statement, topup
from typer.testing import CliRunner

from paycell.cli import app as cli_app
from paycell.merchants.service import create_active_merchant
from paycell.reconciliation import service


def test_reconcile_cli(client, ctx, db_url, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sub, _ = wallet(ctx)
    fund(ctx, sub, 1_000)
    ref = topup(ctx, sub, 10_000)
    topup(ctx, sub, 2_500)  # not on the statement
    path = statement(tmp_path / "icbc.csv", [("in", ref, 10_000), ("in", "topup:tu_x", 300)],
                     encoding="gbk", memo="工商银行")
    operator(ctx, "alice")
    operator(ctx, "bob")
    m = create_active_merchant(ctx, name="Tea House", category="restaurant")
    runner = CliRunner(env={"COLUMNS": "200", "PAYCELL_REPORTS_DIR": str(tmp_path / "rep")})
    url = ["--database-url", db_url]

    out = runner.invoke(cli_app, ["reconcile", "import", str(path), "--source", "bank", *url])
    assert out.exit_code == 0, out.output
    assert "matched" in out.output and "missing_theirs" in out.output and "█" in out.output
    report = Path(out.output.split("report: ")[1].split()[0])
    assert report.name.startswith("recon-bank-icbc-") and report.exists()
    again = runner.invoke(cli_app, ["reconcile", "import", str(path), *url])
    assert again.exit_code == 0 and "already imported" in again.output
    out = runner.invoke(cli_app, ["reconcile", "statements", *url])
    assert out.exit_code == 0 and "gbk" in out.output
    out = runner.invoke(cli_app, ["reconcile", "items", *url])
    assert out.exit_code == 0 and "missing_ours" in out.output
    item = next(i for i in service.list_items(ctx) if i.category == "missing_ours")
    out = runner.invoke(cli_app, ["reconcile", "resolve", str(item.id), "--action",
                                  "write_off", "--note", "no owner", "--as", "alice", *url])
    assert out.exit_code == 0 and "proposed as approval" in out.output, out.output
    approval = out.output.split("approval ")[1].split(":")[0]
    ok = runner.invoke(cli_app, ["operators", "approve", approval, "--as", "bob", *url])
    assert ok.exit_code == 0, ok.output
    assert item.id not in [i.id for i in service.list_items(ctx)]
    bad = tmp_path / "bad.csv"
    bad.write_text(path.read_bytes().decode("gb18030").replace("100.00", "1e2"),
                   encoding="utf-8")
    out = runner.invoke(cli_app, ["reconcile", "import", str(bad), *url])
    assert out.exit_code == 1 and "statement_invalid" in out.output and "line 4" in out.output
    ctx.clock.advance(days=1)
    out = runner.invoke(cli_app, ["reconcile", "bill", "--merchant-id", str(m.merchant.id),
                                  "--date", "2026-01-01", "--out", str(tmp_path / "b.csv"),
                                  *url])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "b.csv").read_text().endswith("#end\n")
    out = runner.invoke(cli_app, ["reconcile", "simulate", "--partner", "icbc", "--date",
                                  "2026-01-01", "--out", str(tmp_path / "sim.csv"), *url])
    assert out.exit_code == 0, out.output
