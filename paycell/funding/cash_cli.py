"""``paycell vouchers ...`` and ``paycell agents ...``: the operators' command line."""

from __future__ import annotations

import csv
import os
from datetime import date, timedelta
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from paycell.clikit import UrlOpt
from paycell.clikit import cli_context as _context
from paycell.clock import rfc3339
from paycell.console import console
from paycell.errors import PaycellError
from paycell.money import format_amount, parse_amount

vouchers_app = typer.Typer(help="Recharge voucher cards (充值卡).", no_args_is_help=True)
agents_app = typer.Typer(help="Agent outlets and their float.", no_args_is_help=True)


# -- vouchers -------------------------------------------------------------------------------


@vouchers_app.command("generate")
def generate(
    face: str = typer.Option(..., help="face value in CNY, e.g. 50.00"),
    count: int = typer.Option(..., min=1, help="how many cards"),
    out: Path = typer.Option(..., help="CSV file to write the cards to (must not exist)"),
    expires: str | None = typer.Option(None, help="last valid day, YYYY-MM-DD (Beijing); "
                                       "default: one year from today"),
    database_url: str | None = UrlOpt,
) -> None:
    """Generate a batch and write its card numbers and secrets to a CSV file for printing.

    The secrets exist only in that file (readable by its owner alone): the database keeps
    their HMACs. If the file is lost, void the batch.
    """
    from paycell.funding import cash_rules, vouchers

    try:
        face_fen = parse_amount(face)
        expires_on = date.fromisoformat(expires) if expires else None
    except ValueError as exc:  # MoneyError is a ValueError
        raise typer.BadParameter(str(exc)) from None
    # Open the file before generating, so that a bad path fails before any card exists.
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        console.print(f"[red]cannot create {out}[/]: {exc.strerror}")
        raise typer.Exit(1) from None
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh, _context(database_url) as ctx:
        if expires_on is None:
            expires_on = cash_rules.card_today(ctx.clock.now_us()) + timedelta(days=365)
        with Progress(TextColumn("generating cards"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console.now(), transient=True) as bar:
            task = bar.add_task("cards", total=count)
            try:
                made = vouchers.generate_batch(
                    ctx, face_fen, count, expires_on,
                    progress=lambda done, total: bar.update(task, completed=done))
            except PaycellError:
                out.unlink(missing_ok=True)
                raise
        writer = csv.writer(fh)
        writer.writerow(["batch_id", "card_number", "secret", "face_value", "expires_on"])
        b = made.batch
        for number, secret in made.cards:
            writer.writerow([b.id, number, secret, format_amount(b.face_value_fen),
                             b.expires_on])
    console.print(f"batch [bold]{b.id}[/]: {b.card_count} cards of "
                  f"{format_amount(b.face_value_fen)} CNY, valid through {b.expires_on}, "
                  f"written to {out}")


@vouchers_app.command("batch")
def batch(batch_id: int, database_url: str | None = UrlOpt) -> None:
    """A batch's summary: issued, redeemed, and what is left."""
    from paycell.funding import vouchers

    with _context(database_url) as ctx:
        s = vouchers.batch_summary(ctx, batch_id)
    b = s.batch
    table = Table(title=f"voucher batch {b.id} ({s.status}), valid through {b.expires_on}")
    table.add_column("")
    table.add_column("cards", justify="right")
    table.add_column("CNY", justify="right")
    table.add_row("issued", str(b.card_count), format_amount(b.card_count * b.face_value_fen))
    table.add_row("redeemed", str(s.redeemed_count), format_amount(s.redeemed_fen))
    table.add_row("unredeemed", str(s.unredeemed_count), format_amount(s.unredeemed_fen))
    console.print(table)


@vouchers_app.command("void")
def void(batch_id: int, database_url: str | None = UrlOpt) -> None:
    """Make every unredeemed card of a batch unusable."""
    from paycell.funding import vouchers

    with _context(database_url) as ctx:
        b = vouchers.void_batch(ctx, batch_id)
    console.print(f"batch {b.id} voided at {rfc3339(b.voided_at or 0)}")


# -- agents ---------------------------------------------------------------------------------


@agents_app.command("create")
def create(
    code: str = typer.Option(..., help="the outlet's code, e.g. GZ-TH-001"),
    name: str = typer.Option(...), location: str = typer.Option(...),
    database_url: str | None = UrlOpt,
) -> None:
    """Register an agent; print its API key (shown this once)."""
    from paycell.funding import agents

    with _context(database_url) as ctx:
        agent, key = agents.create_agent(ctx, code, name, location)
    console.print(f"agent [bold]{agent.id}[/] ({agent.code}) registered")
    console.print("API key (X-Agent-Key), shown once:")
    typer.echo(key)  # plain, unwrapped: to be copied


@agents_app.command("float")
def float_topup(
    agent_id: int, amount: str = typer.Option(..., help="CNY, e.g. 10000.00"),
    reference: str = typer.Option(..., help="the bank deposit's reference"),
    database_url: str | None = UrlOpt,
) -> None:
    """Credit an agent's float with a cash deposit it made at the operator's bank."""
    from paycell.funding import agents

    try:
        amount_fen = parse_amount(amount)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    with _context(database_url) as ctx:
        agents.top_up_float(ctx, agent_id, amount_fen, reference)
        acct = agents.float_account(ctx, agents.get_agent(ctx, agent_id))
    console.print(f"agent {agent_id}: float {format_amount(acct.balance)} CNY")


@agents_app.command("list")
def list_(database_url: str | None = UrlOpt) -> None:
    """Every agent with its float."""
    from paycell.funding import agents

    table = Table(title="agents")
    for col in ("id", "code", "name", "location", "float CNY"):
        table.add_column(col)
    with _context(database_url) as ctx:
        after = 0
        while page := agents.list_agents(ctx, after_id=after, limit=500):
            for a in page:
                table.add_row(str(a.id), a.code, a.name, a.location,
                              format_amount(agents.float_account(ctx, a).balance))
            after = page[-1].id
    console.print(table)
