"""The worked example in docs/merchant-api.md stays true, computed with the standard
library as the page shows and with paycell's own signer and checker."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

from typer.testing import CliRunner

from paycell.cli import app as cli_app
from paycell.merchants import signing as s

DOC = (Path(__file__).parents[2] / "docs" / "merchant-api.md").read_text()
SECRET = "msk_Zm9yLWRvY3Mtb25seS1kby1ub3QtdXNlLWl0"
KEY_ID = "mk_5f1e2d3c4b5a69788796a5b4"
BODY = b'{"code":"SZ-01","name":"Harbour Coffee Nanshan","address":"1 Keyuan Rd, Shenzhen"}'
TS, NONCE = "1767225600", "3f9a6c2e8b1d4f70a5c3e9b2d6f18a47"
DIGEST = "745a2c84aa65b52bce3e0cef2cb51ccf213a870ca2f203566027929fd10b1236"
SIGNATURE = "198ac15918d3aa83abcec614cfc3baabe89586a01d0f2a90602538f1e2fce603"
GET_SIGNATURE = "d0c5508f800ae65592b598034a802fe9faeec9e26e91d1e6d2486d00c711e14d"


def test_the_page_states_these_numbers() -> None:
    for value in (SECRET, KEY_ID, BODY.decode(), TS, NONCE, DIGEST, SIGNATURE, GET_SIGNATURE):
        assert value in DOC, value


def test_the_python_snippet_on_the_page_prints_the_signature(capsys: object) -> None:
    snippet = re.search(r"```python\n(import hashlib, hmac\n.*?)```", DOC, re.S)
    assert snippet is not None
    exec(snippet.group(1), {})
    assert capsys.readouterr().out.strip() == SIGNATURE  # type: ignore[attr-defined]


def test_the_numbers_follow_from_the_rules() -> None:
    assert hashlib.sha256(BODY).hexdigest() == DIGEST
    text = "\n".join(["POST", "/v1/merchant/stores", TS, NONCE, DIGEST])
    assert hmac.new(SECRET.encode(), text.encode(), hashlib.sha256).hexdigest() == SIGNATURE
    h = s.sign_headers(KEY_ID, SECRET, "POST", "/v1/merchant/stores", BODY,
                       timestamp=int(TS), nonce=NONCE)
    assert h[s.SIGNATURE] == SIGNATURE
    g = s.sign_headers(KEY_ID, SECRET, "GET", "/v1/merchant/stores?limit=5", b"",
                       timestamp=int(TS), nonce="a1b2c3d4e5f60718")
    assert g[s.SIGNATURE] == GET_SIGNATURE


def test_check_signature_reproduces_the_example_offline() -> None:
    args = ["merchants", "check-signature", "--key-id", KEY_ID, "--method", "POST",
            "--path", "/v1/merchant/stores", "--timestamp", TS, "--nonce", NONCE,
            "--body", BODY.decode(), "--now", TS, "--secret", SECRET]
    ok = CliRunner().invoke(cli_app, [*args, "--signature", SIGNATURE, "--digest", DIGEST])
    assert ok.exit_code == 0, ok.output
    assert DIGEST in ok.output and SIGNATURE in ok.output and "OK" in ok.output
    assert "|/v1/merchant/stores|" in ok.output
    bad = CliRunner().invoke(cli_app, [*args, "--signature", "0" * 64])
    assert bad.exit_code == 1 and "signature_mismatch" in bad.output
    assert f"expected signature: hex(HMAC-SHA256(secret, text)) = {SIGNATURE}" in bad.output
    late = CliRunner().invoke(cli_app, [*args[:-4], "--now", str(int(TS) + 301),
                                        "--secret", SECRET, "--signature", SIGNATURE])
    assert late.exit_code == 1 and "timestamp_stale" in late.output
    changed = CliRunner().invoke(cli_app, [*args, "--signature", SIGNATURE,
                                           "--digest", "0" * 64])
    assert changed.exit_code == 1 and "digest_mismatch" in changed.output
