"""``paycell merchants`` on a real database: list, show, and check-signature looking the
key up by its id (an operator helping a merchant)."""

from __future__ import annotations

from typer.testing import CliRunner

from paycell.cli import app as cli_app
from paycell.clock import ManualClock
from paycell.config import Settings
from paycell.context import build_context
from paycell.merchants import signing as s
from paycell.merchants.service import create_active_merchant


def test_list_show_and_check_signature_from_the_database(db_url: str, engine: object) -> None:
    clock = ManualClock()
    ctx = build_context(engine, settings=Settings(_env_file=None, database_url=db_url,  # type: ignore[arg-type]
                                                  run_workers=False), clock=clock)
    m = create_active_merchant(ctx, name="Inkwell Books", category="books_media")
    runner = CliRunner()
    out = runner.invoke(cli_app, ["merchants", "list", "--database-url", db_url])
    assert out.exit_code == 0 and m.merchant.code in out.output, out.output
    out = runner.invoke(cli_app, ["merchants", "show", m.merchant.code.lower(),
                                  "--database-url", db_url])
    assert out.exit_code == 0 and m.key_id in out.output and "activated" in out.output
    assert runner.invoke(cli_app, ["merchants", "show", "M999999", "--database-url",
                                   db_url]).exit_code == 1
    ts = clock.now_us() // 1_000_000
    h = s.sign_headers(m.key_id, m.secret, "GET", "/v1/merchant", b"", timestamp=ts)
    args = ["merchants", "check-signature", "--key-id", m.key_id, "--method", "GET",
            "--path", "/v1/merchant", "--timestamp", str(ts), "--nonce", h[s.NONCE],
            "--now", str(ts), "--database-url", db_url]
    ok = runner.invoke(cli_app, [*args, "--signature", h[s.SIGNATURE]])
    assert ok.exit_code == 0 and "OK" in ok.output, ok.output
    bad = runner.invoke(cli_app, [*args, "--path", "/v1/merchant?x=1",
                                  "--signature", h[s.SIGNATURE]])
    assert bad.exit_code == 1 and "signature_mismatch" in bad.output
    unknown = runner.invoke(cli_app, [*args[:3], "mk_nope", *args[4:],
                                      "--signature", h[s.SIGNATURE]])
    assert unknown.exit_code == 1 and "key_unknown" in unknown.output
