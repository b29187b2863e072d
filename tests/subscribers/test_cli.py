"""``paycell subscribers ...`` and ``paycell sms list``."""

from __future__ import annotations

from sqlalchemy import Engine
from typer.testing import CliRunner

from paycell.cli import app
from paycell.context import Context
from paycell.subscribers.codes import request_pin_reset
from paycell.subscribers.service import get_subscriber, open_account

runner = CliRunner()


def test_show_freeze_unfreeze_and_sms(ctx: Context, db_url: str, engine: Engine) -> None:
    sub = open_account(ctx, "+8613800138000", "730419", name="Li [bold]Lei",
                       id_number="11010519491231002X")
    request_pin_reset(ctx, sub.msisdn)
    url = ["--database-url", db_url]
    r = runner.invoke(app, ["subscribers", "freeze", str(sub.id), "--reason", "lost phone",
                            *url])
    assert r.exit_code == 0, r.output
    assert get_subscriber(ctx, sub.id).state == "frozen"
    r = runner.invoke(app, ["subscribers", "freeze", str(sub.id), "--reason", "again", *url])
    assert r.exit_code == 1 and "subscriber_state_invalid" in r.output
    r = runner.invoke(app, ["subscribers", "show", "13800138000", *url],
                      env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "frozen" in r.output and "lost phone" in r.output and "…002X" in r.output
    assert "Li [bold]Lei" in r.output
    r = runner.invoke(app, ["subscribers", "unfreeze", str(sub.id), "--reason", "found",
                            *url])
    assert r.exit_code == 0 and get_subscriber(ctx, sub.id).state == "active"
    r = runner.invoke(app, ["sms", "list", "--msisdn", "13800138000", *url],
                      env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "[paycell] Your PIN reset code is" in r.output
    r = runner.invoke(app, ["subscribers", "show", "13900139000", *url])
    assert r.exit_code == 1
