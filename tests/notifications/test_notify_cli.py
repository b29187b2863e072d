"""``paycell notifications list|show|resend`` on both databases."""

from __future__ import annotations

from notify_helpers import (  # type: ignore[import-not-found]
    Answer,
    MerchantServer,
    clock,
    ctx,
    merchant_server,
    new_merchant,
    notify,
)
from typer.testing import CliRunner

from paycell.cli import app as cli_app
from paycell.context import Context
from paycell.notifications import delivery, service
from paycell.operators.service import create_operator

__all__ = ["clock", "ctx", "merchant_server"]


def run(ctx: Context, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, ["notifications", *args, "--database-url",
                                          ctx.settings.database_url],
                                env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_list_show_resend(ctx: Context, merchant_server: MerchantServer) -> None:
    srv = merchant_server
    mid = new_merchant(ctx, srv)
    srv.script = [Answer(500, "down for maintenance")]
    nid = notify(ctx, mid, srv.url, event="refund.succeeded")
    delivery.deliver_due(ctx)

    code, out = run(ctx, "list", "--state", "pending")
    assert code == 0 and nid in out and "refund.succeeded" in out
    code, out = run(ctx, "list", "--state", "delivered")
    assert code == 0 and nid not in out
    code, out = run(ctx, "list", "--state", "lost")
    assert code == 1 and "state is one of" in out

    code, out = run(ctx, "show", nid)
    assert code == 0 and "pending" in out
    assert "http_status" in out and "500" in out and "down for maintenance" in out
    code, out = run(ctx, "show", "ntf_nope")
    assert code == 1 and "notification_not_found" in out

    create_operator(ctx, "carol", "operator")
    create_operator(ctx, "audrey", "auditor")
    code, out = run(ctx, "resend", nid, "--as", "audrey")
    assert code == 1 and "operator_role_forbidden" in out
    code, out = run(ctx, "resend", nid, "--as", "nobody")
    assert code == 1
    code, out = run(ctx, "resend", nid, "--as", "carol")
    assert code == 0, out
    assert "delivered" in out and "carol (manual)" in out and "acknowledged" in out
    log = service.get_notification(ctx, nid).attempt_log
    assert [(a.manual, a.operator) for a in log] == [(False, None), (True, "carol")]


def test_resend_not_acknowledged_exits_1(ctx: Context, merchant_server: MerchantServer) -> None:
    mid = new_merchant(ctx, merchant_server)
    merchant_server.script = [Answer(200, "OK")]
    nid = notify(ctx, mid, merchant_server.url)
    code, out = run(ctx, "resend", nid, "--as", "root")
    assert code == 1 and "not acknowledged" in out and "not_acknowledged" in out
