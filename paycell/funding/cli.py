"""``paycell funding ...``: operations waiting for a bank or carrier, and the status query.

``resolve`` talks to the bank and carrier the settings name (in development: the
simulators mounted in ``paycell serve``, so the server must be running).
"""

from __future__ import annotations

import typer
from rich.table import Table

from paycell.clikit import UrlOpt, cli_context
from paycell.clock import rfc3339
from paycell.console import console
from paycell.money import format_amount

funding_app = typer.Typer(help="Top-ups and withdrawals waiting for a bank or carrier.",
                          no_args_is_help=True)


@funding_app.command("pending")
def pending(database_url: str | None = UrlOpt) -> None:
    """List top-ups and withdrawals whose outcome is not known yet."""
    from paycell.funding.jobs import pending_operations

    with cli_context(database_url) as ctx:
        items = pending_operations(ctx)
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

    with cli_context(database_url, bank_url=bank_url, carrier_url=carrier_url) as ctx:
        settled = resolve_pending(ctx, force=all_)
        left = len(pending_operations(ctx))
    console.print(f"settled {settled}; {left} still pending")
