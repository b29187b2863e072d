"""``paycell onsite issue-card | cards | report-lost``: NFC SIM cards from the command line
(registered on ``onsite_app`` in ``cli.py``)."""

from __future__ import annotations

import typer
from rich.table import Table

from paycell.clikit import UrlOpt
from paycell.clikit import cli_context as _context
from paycell.console import console
from paycell.money import format_amount


def issue_card(
    msisdn: str = typer.Argument(..., help="the wallet's mobile number"),
    iccid: str = typer.Option(..., help="the SIM's ICCID (19-20 digits, starting 89)"),
    database_url: str | None = UrlOpt,
) -> None:
    """Issue an NFC SIM payment card bound to the wallet of MSISDN (state ``issued``)."""
    from paycell.onsite import cards
    from paycell.subscribers.service import SubscriberNotFoundError, find_by_msisdn

    with _context(database_url) as ctx:
        sub = find_by_msisdn(ctx, msisdn)
        if sub is None:
            raise SubscriberNotFoundError(f"no wallet has the number {msisdn}")
        card = cards.issue_card(ctx, sub, iccid, actor="cli")
    console.print(f"card [bold]{card.id}[/] issued: PAN {card.pan} PSN {card.psn}, "
                  f"ICCID {card.iccid}, state {card.state}")


def list_cards(
    msisdn: str | None = typer.Option(None, help="only this wallet's cards"),
    state: str | None = typer.Option(None, help="issued, active, locked, lost, terminated"),
    limit: int = typer.Option(100, min=1, max=1000),
    database_url: str | None = UrlOpt,
) -> None:
    """NFC SIM cards, oldest first."""
    from paycell.onsite import cards
    from paycell.subscribers.service import find_by_msisdn

    with _context(database_url) as ctx:
        subscriber_id = None
        if msisdn is not None:
            sub = find_by_msisdn(ctx, msisdn)
            subscriber_id = sub.id if sub is not None else -1
        rows = cards.list_cards(ctx, subscriber_id=subscriber_id, state=state, limit=limit)
        table = Table("id", "wallet", "PAN", "PSN", "ICCID", "state", "hot", "e-cash")
        for c in rows[:limit]:
            purse = ctx.ledger.account(c.ecash_account_id).balance
            table.add_row(str(c.id), str(c.subscriber_id), c.pan, c.psn, c.iccid, c.state,
                          "yes" if c.hot_listed else "", format_amount(purse))
    console.print(table)


def report_lost(
    card_id: int = typer.Argument(..., help="the card's id (see `paycell onsite cards`)"),
    reason: str | None = typer.Option(None, help="what the holder said"),
    database_url: str | None = UrlOpt,
) -> None:
    """Block a card at once (lost, hot-listed) and queue the lock of its SIM applet."""
    from paycell.onsite import cards

    with _context(database_url) as ctx:
        card = cards.report_lost(ctx, card_id, "cli", reason=reason)
    console.print(f"card {card.id} ({card.pan_masked}) is {card.state}; hot-listed")
