"""``paycell payments`` on a real database: list, show, disputes, resolve (proposed by one
operator, approved by another through ``paycell operators approve``), run-jobs."""

from __future__ import annotations

from payment_helpers import PIN, fund, wallet  # type: ignore[import-not-found]
from typer.testing import CliRunner

from paycell.cli import app as cli_app
from paycell.operators.service import create_operator
from paycell.payments import escrow, orders, paying


def test_payments_cli(client, ctx, shop, db_url) -> None:  # type: ignore[no-untyped-def]
    buyer, _ = wallet(ctx)
    fund(ctx, buyer, 10_000)
    order, _ = orders.create_order(ctx, shop.merchant, orders.OrderRequest(
        out_trade_no="CLI-1", amount_fen=2500, subject="Lamp", payer_msisdn=buyer.msisdn,
        kind="escrow"))
    paying.confirm_order(ctx, buyer, order.trade_no, PIN)
    dispute = escrow.open_dispute(ctx, buyer, order.trade_no, "the lamp is cracked")
    create_operator(ctx, "alice", "operator")
    create_operator(ctx, "bob", "operator")
    runner = CliRunner(env={"COLUMNS": "200"})
    url = ["--database-url", db_url]

    out = runner.invoke(cli_app, ["payments", "list", *url])
    assert out.exit_code == 0 and order.trade_no in out.output and "disputed: 1" in out.output
    out = runner.invoke(cli_app, ["payments", "show", order.trade_no, *url])
    assert out.exit_code == 0 and "held" in out.output and "disputed" in out.output
    out = runner.invoke(cli_app, ["payments", "disputes", *url])
    assert out.exit_code == 0 and "cracked" in out.output
    out = runner.invoke(cli_app, ["payments", "resolve", str(dispute.id), "--outcome", "split",
                                  "--buyer-fen", "1000", "--as", "alice", *url])
    assert out.exit_code == 0, out.output
    approval_id = out.output.split("approval ")[1].split()[0]
    same = runner.invoke(cli_app, ["operators", "approve", approval_id, "--as", "alice", *url])
    assert same.exit_code == 1 and "approval_same_operator" in same.output
    ok = runner.invoke(cli_app, ["operators", "approve", approval_id, "--as", "bob", *url])
    assert ok.exit_code == 0, ok.output
    assert orders.get_order(ctx, order.trade_no).state == "partially_refunded"
    assert ctx.ledger.account(buyer.wallet_account_id).balance == 10_000 - 1500
    out = runner.invoke(cli_app, ["payments", "run-jobs", *url])
    assert out.exit_code == 0 and "0 orders changed" in out.output
    bad = runner.invoke(cli_app, ["payments", "show", "P00000000000000000000", *url])
    assert bad.exit_code == 1 and "order_not_found" in bad.output
