"""Operators' command line for subscribers, and the recorded SMS outbox.

``paycell subscribers show MSISDN``, ``paycell subscribers freeze|unfreeze ID --reason``,
``paycell sms list [--msisdn]``.
"""

from __future__ import annotations

import getpass

import typer
from rich.markup import escape
from rich.table import Table

from paycell.clikit import UrlOpt
from paycell.clikit import cli_context as _context
from paycell.clock import rfc3339
from paycell.console import console
from paycell.money import format_amount

subscribers_app = typer.Typer(help="Subscribers: look up, freeze, unfreeze.",
                              no_args_is_help=True)
sms_app = typer.Typer(help="Text messages recorded by the development SMS gateway.",
                      no_args_is_help=True)




def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@subscribers_app.command("show")
def show(msisdn: str, database_url: str | None = UrlOpt) -> None:
    """Everyone who held MSISDN (newest first), and the current owner's audit log."""
    from paycell.subscribers.lifecycle import describe
    from paycell.subscribers.service import history_by_msisdn

    with _context(database_url) as ctx:
        found = [describe(ctx, s.id) for s in history_by_msisdn(ctx, msisdn)]
        if not found:
            console.print(f"no subscriber has ever held {msisdn}")
            raise typer.Exit(1)
        table = Table(title=f"subscribers of {found[0].subscriber.msisdn}")
        for col in ("id", "state", "tier", "name", "ID no.", "wallet", "balance (CNY)",
                    "opened", "closed", "PIN locked until"):
            table.add_column(col)
        for d in found:
            s = d.subscriber
            table.add_row(str(s.id), s.state, str(s.tier), escape(s.name or ""),
                          f"…{d.id_number_last4}" if d.id_number_last4 else "",
                          str(s.wallet_account_id), format_amount(d.balance_fen),
                          rfc3339(s.created_at), rfc3339(d.closed_at) if d.closed_at else "",
                          rfc3339(d.pin_locked_until) if d.pin_locked_until else "")
        console.print(table)
        log = Table(title=f"audit log of subscriber {found[0].subscriber.id}")
        for col in ("when", "event", "by", "reason"):
            log.add_column(col)
        for kind, actor, reason, at in found[0].events:
            log.add_row(rfc3339(at), kind, actor, escape(reason or ""))
        console.print(log)


def _change(action: str, subscriber_id: int, reason: str, url: str | None) -> None:
    from paycell.subscribers import lifecycle

    with _context(url) as ctx:
        fn = lifecycle.freeze if action == "freeze" else lifecycle.unfreeze
        sub = fn(ctx, subscriber_id, reason, actor=_actor())
        console.print(f"subscriber {sub.id} ({sub.msisdn}) is now [bold]{sub.state}[/]")


ReasonOpt = typer.Option(..., "--reason", help="why (kept in the audit log)")


@subscribers_app.command("freeze")
def freeze(subscriber_id: int, reason: str = ReasonOpt,
           database_url: str | None = UrlOpt) -> None:
    """Freeze a wallet: it can still receive money, not pay nor withdraw."""
    _change("freeze", subscriber_id, reason, database_url)


@subscribers_app.command("unfreeze")
def unfreeze(subscriber_id: int, reason: str = ReasonOpt,
             database_url: str | None = UrlOpt) -> None:
    """Unfreeze a frozen wallet."""
    _change("unfreeze", subscriber_id, reason, database_url)


@sms_app.command("list")
def sms_list(
    msisdn: str | None = typer.Option(None, "--msisdn", help="only texts to this number"),
    limit: int = typer.Option(20, "--limit", min=1, max=1000),
    database_url: str | None = UrlOpt,
) -> None:
    """The newest texts first (what subscribers would have received)."""
    from paycell.gateways.sms import RecordingSms
    from paycell.subscribers.service import normalise_msisdn

    with _context(database_url) as ctx:
        number = normalise_msisdn(msisdn) if msisdn else None
        sms = ctx.sms if isinstance(ctx.sms, RecordingSms) else RecordingSms(ctx.engine,
                                                                              ctx.clock)
        table = Table(title="recorded SMS")
        for col in ("id", "when", "to", "text"):
            table.add_column(col)
        for m in sms.messages(number, limit=limit):
            table.add_row(str(m.id), rfc3339(m.created_at), m.msisdn, escape(m.body))
        console.print(table)


from paycell.gateways.smpp_cli import register as _register_smpp_commands  # noqa: E402

_register_smpp_commands(sms_app)  # paycell sms smsc | receive (docs/sms.md)
