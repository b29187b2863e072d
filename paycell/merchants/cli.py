"""``paycell merchants ...``: list, show, and ``check-signature``, which reproduces the
server's signature computation step by step for a merchant debugging an integration."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from paycell.clikit import UrlOpt
from paycell.clikit import cli_context as _context
from paycell.clock import rfc3339
from paycell.console import console


def _say(text: str) -> None:
    # Hex and signed text must stay on one line each, to be compared and copied.
    console.print(text, soft_wrap=True, highlight=False)


merchants_app = typer.Typer(help="Merchants: look up; check a request signature.",
                            no_args_is_help=True)


@merchants_app.command("list")
def list_(state: str | None = typer.Option(None, "--state"),
          database_url: str | None = UrlOpt) -> None:
    """Merchants, newest first."""
    from paycell.merchants.service import list_merchants

    with _context(database_url) as ctx:
        table = Table(title="merchants")
        for col in ("id", "code", "name", "category", "state", "payable account", "created"):
            table.add_column(col)
        for m in list_merchants(ctx, state=state, limit=500):
            table.add_row(str(m.id), m.code, escape(m.name), m.category, m.state,
                          str(m.payable_account_id or ""), rfc3339(m.created_at))
        console.print(table)


@merchants_app.command("show")
def show(code: str, database_url: str | None = UrlOpt) -> None:
    """A merchant (by code, e.g. M100001): credentials, stores and audit log."""
    from paycell.merchants.credentials import list_credentials
    from paycell.merchants.service import find_by_code, list_stores, merchant_events

    with _context(database_url) as ctx:
        m = find_by_code(ctx, code)
        if m is None:
            console.print(f"no merchant {code}")
            raise typer.Exit(1)
        console.print(f"[bold]{m.code}[/] {escape(m.name)} ({escape(m.company)}), "
                      f"{m.category}, [bold]{m.state}[/], payable account "
                      f"{m.payable_account_id}")
        now = ctx.clock.now_us()
        for c in list_credentials(ctx, m.id):
            console.print(f"  key {c.key_id} {c.kind} {escape(c.label)} "
                          f"{'active' if c.active_at(now) else 'revoked'}")
        for s in list_stores(ctx, m.id):
            console.print(f"  store {s.code} {escape(s.name)} ({s.state})")
        for kind, actor, reason, at in merchant_events(ctx, m.id):
            console.print(f"  {rfc3339(at)} {kind} by {actor} {escape(reason or '')}")


@merchants_app.command("check-signature")
def check_signature(
    key_id: str = typer.Option(..., "--key-id"),
    method: str = typer.Option(..., "--method"),
    path: str = typer.Option(..., "--path", help="path and query exactly as sent"),
    timestamp: str = typer.Option(..., "--timestamp", help="X-Paycell-Timestamp as sent"),
    nonce: str = typer.Option(..., "--nonce", help="X-Paycell-Nonce as sent"),
    signature: str = typer.Option(..., "--signature", help="X-Paycell-Signature as sent"),
    body: str = typer.Option("", "--body", help="the body as sent (UTF-8)"),
    body_file: Path | None = typer.Option(None, "--body-file", help="or the body's bytes"),
    digest: str | None = typer.Option(None, "--digest",
                                      help="X-Paycell-Content-SHA256, if you send it"),
    secret: str | None = typer.Option(
        None, "--secret", envvar="PAYCELL_MERCHANT_SECRET",
        help="your HMAC secret; without it the key is looked up in the database"),
    now: int | None = typer.Option(None, "--now", help="unix seconds (default: now)"),
    window: int = typer.Option(300, "--window", help="the server's window in seconds"),
    database_url: str | None = UrlOpt,
) -> None:
    """Recompute a signed request as the server does and say where it goes wrong."""
    from paycell.merchants.signing import explain

    data = body_file.read_bytes() if body_file is not None else body.encode()
    public_key = None
    if secret is None:
        from paycell.merchants.credentials import lookup_key

        with _context(database_url) as ctx:
            found = lookup_key(ctx, key_id)
            if found is None:
                console.print(f"[red]key_unknown[/]: no API key {key_id!r}")
                raise typer.Exit(1)
            cred, secret, _ = found
            public_key = cred.public_key
    e = explain(method=method, target=path, timestamp=timestamp, nonce=nonce, body=data,
                signature=signature, secret=secret, public_key_hex=public_key,
                digest_header=digest, now_s=int(time.time()) if now is None else now,
                window_s=window)
    _say(f"1. body: {len(data)} bytes; sha256 = {e.digest}")
    if e.digest_ok is not None:
        _say(f"   X-Paycell-Content-SHA256 {'matches' if e.digest_ok else 'DIFFERS'}")
    _say("2. the signed text (lines joined by \\n, no newline at the end):")
    for line in e.canonical.split("\n"):
        _say(f"   |{escape(line)}|")
    _say(f"   as a Python string: {escape(repr(e.canonical))}")
    if e.expected is not None:
        _say(f"3. expected signature: hex(HMAC-SHA256(secret, text)) = {e.expected}")
    else:
        _say("3. Ed25519 key: the signature is checked with the registered "
                      "public key")
    _say(f"   signature sent:      {signature.lower()}")
    if e.timestamp_ok is not None:
        _say(f"4. timestamp is {e.skew_s}s behind our clock" if (e.skew_s or 0) >= 0
                      else f"4. timestamp is {-(e.skew_s or 0)}s ahead of our clock")
    verdict = ("digest_mismatch" if e.digest_ok is False else
               "signature_mismatch" if not e.signature_ok else
               "timestamp_stale" if e.timestamp_ok is False else None)
    if verdict is None:
        _say("[green]OK[/]: the server computes the same signature")
        return
    _say(f"[red]{verdict}[/]: " + {
        "digest_mismatch": "the body you sent is not the body you hashed",
        "signature_mismatch": "sign exactly this text: same method, path with query as "
                              "sent, the timestamp and nonce headers, the SHA-256 of the "
                              "exact body bytes",
        "timestamp_stale": f"your clock is more than {window}s off; sync it (NTP)",
    }[verdict])
    raise typer.Exit(1)
