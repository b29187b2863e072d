"""``paycell onsite register-terminal | terminals | batch-totals``: POS terminals from the
command line (registered on ``onsite_app`` in ``cli.py``)."""

from __future__ import annotations

import os

import typer
from rich.table import Table

from paycell.clikit import UrlOpt
from paycell.clikit import cli_context as _context
from paycell.clock import rfc3339
from paycell.console import console
from paycell.money import format_amount


def _actor() -> str:
    return f"cli:{os.environ.get('USER', 'operator')}"


def register_terminal(
    merchant: str = typer.Option(..., "--merchant", help="the merchant's code, e.g. M100001"),
    store: str = typer.Option(..., "--store", help="the merchant's store code, e.g. S1"),
    database_url: str | None = UrlOpt,
) -> None:
    """Register a POS terminal to a merchant's store; the deposit is taken from the
    merchant's payable balance. The terminal key is printed once: load it into the
    terminal now."""
    from paycell.onsite import terminals

    with _context(database_url) as ctx:
        reg = terminals.register_terminal(ctx, merchant, store, _actor())
        deposit = format_amount(reg.terminal.deposit_fen)
    console.print(f"terminal [bold]{reg.terminal.terminal_id}[/] registered to {merchant.upper()} "
                  f"store {store}; deposit {deposit} CNY taken")
    console.print(f"terminal key (shown once): {reg.key_hex}", soft_wrap=True, highlight=False)


def list_terminals(
    merchant: str | None = typer.Option(None, "--merchant", help="only this merchant's"),
    state: str | None = typer.Option(None, help="active, suspended, retired"),
    database_url: str | None = UrlOpt,
) -> None:
    """POS terminals, newest first."""
    from paycell.merchants.errors import MerchantNotFoundError
    from paycell.merchants.service import find_by_code, get_merchant
    from paycell.onsite import terminals

    with _context(database_url) as ctx:
        merchant_id = None
        if merchant is not None:
            m = find_by_code(ctx, merchant)
            if m is None:
                raise MerchantNotFoundError(f"no merchant {merchant}")
            merchant_id = m.id
        table = Table(title="POS terminals")
        for col in ("terminal", "merchant", "store id", "state", "batch", "deposit",
                    "registered"):
            table.add_column(col)
        for t in terminals.list_terminals(ctx, merchant_id=merchant_id, state=state):
            batch = f"{t.batch_no} {'open' if t.batch_open else 'closed'}" if t.batch_no else "-"
            table.add_row(t.terminal_id, get_merchant(ctx, t.merchant_id).code, str(t.store_id),
                          t.state, batch, format_amount(t.deposit_fen), rfc3339(t.created_at))
        console.print(table)


def batch_totals(
    terminal_id: str = typer.Argument(..., help="the terminal, e.g. T01234567"),
    batch: int | None = typer.Option(None, "--batch", help="default: the current or last"),
    database_url: str | None = UrlOpt,
) -> None:
    """A terminal batch's totals: approved, reversed, voided, refunded, declined."""
    from paycell.onsite import terminals

    with _context(database_url) as ctx:
        t = terminals.batch_totals(ctx, terminals.get_terminal(ctx, terminal_id), batch)
    table = Table(title=f"{t.terminal_id} batch {t.batch_no} ({t.state})")
    for col in ("", "count", "CNY"):
        table.add_column(col)
    for name in ("approved", "reversed", "voided", "refunded"):
        table.add_row(name, str(getattr(t, f"{name}_count")),
                      format_amount(getattr(t, f"{name}_fen")))
    table.add_row("declined", str(t.declined_count), "")
    table.add_row("net", "", format_amount(t.net_fen))
    console.print(table)
    if t.balanced is not None:
        console.print(f"terminal totals {'balanced' if t.balanced else '[red]did not balance[/]'}")
