"""``paycell funding ...``: operations waiting for a bank or carrier, and the status query.

``resolve`` talks to the bank and carrier the settings name (in development: the
simulators mounted in ``paycell serve``, so the server must be running).
"""

from __future__ import annotations

import typer
from rich.table import Table

from paycell.clock import rfc3339
from paycell.config import get_settings
from paycell.console import console
from paycell.context import Context, build_context
from paycell.money import format_amount

funding_app = typer.Typer(help="Top-ups and withdrawals waiting for a bank or carrier.",
                          no_args_is_help=True)
UrlOpt = typer.Option(None, "--database-url", help="defaults to PAYCELL_DATABASE_URL")


def _ctx(database_url: str | None, bank_url: str | None = None,
         carrier_url: str | None = None) -> Context:
    from paycell.db import make_engine

    settings = get_settings()
    overrides = {k: v for k, v in (("bank_url", bank_url), ("carrier_url", carrier_url)) if v}
    if overrides:
        settings = settings.model_copy(update=overrides)
    return build_context(make_engine(database_url or settings.database_url), settings=settings)


@funding_app.command("pending")
def pending(database_url: str | None = UrlOpt) -> None:
    """List top-ups and withdrawals whose outcome is not known yet."""
    from paycell.funding.jobs import pending_operations

    ctx = _ctx(database_url)
    try:
        items = pending_operations(ctx)
    finally:
        ctx.engine.dispose()
    table = Table(title=f"{len(items)} operations waiting for their partner")
    for col in ("reference", "subscriber", "partner", "amount", "since", "next query"):
        table.add_column(col)
    for p in items:
        table.add_row(p.reference, str(p.subscriber_id), p.partner, format_amount(p.amount_fen),
                      rfc3339(p.created_at), rfc3339(p.next_check_at) if p.next_check_at
                      else "-")
    console.print(table)


@funding_app.command("resolve")
def resolve(
    all_: bool = typer.Option(False, "--all", help="query every pending operation, not only "
                              "the due ones"),
    bank_url: str | None = typer.Option(None, help="defaults to PAYCELL_BANK_URL"),
    carrier_url: str | None = typer.Option(None, help="defaults to PAYCELL_CARRIER_URL"),
    database_url: str | None = UrlOpt,
) -> None:
    """Run the status-query job once: ask the bank and carrier what became of pending
    operations and apply the answers."""
    from paycell.funding.jobs import pending_operations, resolve_pending

    ctx = _ctx(database_url, bank_url, carrier_url)
    try:
        settled = resolve_pending(ctx, force=all_)
        left = len(pending_operations(ctx))
    finally:
        ctx.engine.dispose()
    console.print(f"settled {settled}; {left} still pending")
