"""``paycell notifications list|show|resend``: the operators' view of merchant notifications."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from paycell.clikit import UrlOpt
from paycell.clikit import cli_context as _context
from paycell.clock import rfc3339
from paycell.console import console
from paycell.notifications.service import STATES, Attempt, NotificationDetail

notifications_app = typer.Typer(help="Merchant notifications: list, show attempts, re-send.",
                                no_args_is_help=True)


def _t(us: int | None) -> str:
    return "" if us is None else rfc3339(us)


@notifications_app.command("list")
def list_(
    merchant_id: int | None = typer.Option(None, "--merchant-id", help="one merchant's only"),
    state: str | None = typer.Option(None, help=f"one of {', '.join(STATES)}"),
    limit: int = typer.Option(50, min=1, max=1000),
    cursor: str | None = typer.Option(None, help="next page: the cursor printed last time"),
    database_url: str | None = UrlOpt,
) -> None:
    """Notifications, newest first."""
    from paycell.notifications import service

    with _context(database_url) as ctx:
        items, next_cursor = service.list_notifications(
            ctx, merchant_id=merchant_id, state=state, cursor=cursor, limit=limit)
    table = Table(title="notifications")
    for col in ("id", "merchant", "event", "state", "attempts", "next attempt", "created"):
        table.add_column(col, justify="right" if col in ("merchant", "attempts") else "left")
    for n in items:
        table.add_row(n.id, str(n.merchant_id), n.event, n.state, str(n.attempts),
                      _t(n.next_attempt_at), _t(n.created_at))
    console.print(table)
    if next_cursor:
        console.print(f"more: --cursor {next_cursor}")


def _attempts_table(attempts: tuple[Attempt, ...]) -> Table:
    table = Table(title="attempts")
    for col in ("#", "time", "status", "result", "ms", "by", "response"):
        table.add_column(col, justify="right" if col in ("#", "status", "ms") else "left")
    for i, a in enumerate(attempts, 1):
        table.add_row(str(i), _t(a.attempted_at), "" if a.status_code is None
                      else str(a.status_code), a.error or "acknowledged", str(a.latency_ms),
                      f"{a.operator} (manual)" if a.manual else "schedule",
                      (a.response_snippet or "")[:60])
    return table


def _print_detail(d: NotificationDetail) -> None:
    n = d.notification
    console.print(f"[bold]{n.id}[/] {n.event} to merchant {n.merchant_id}: [bold]{n.state}[/]")
    console.print(f"url {n.url}")
    console.print(f"created {_t(n.created_at)}; attempts {n.attempts}"
                  + (f"; next attempt {_t(n.next_attempt_at)}" if n.next_attempt_at else "")
                  + (f"; delivered {_t(n.delivered_at)}" if n.delivered_at else ""))
    console.print(f"data {json.dumps(n.data, ensure_ascii=False)}", markup=False)
    console.print(_attempts_table(d.attempt_log))


@notifications_app.command("show")
def show(notification_id: str, database_url: str | None = UrlOpt) -> None:
    """A notification and its attempt log."""
    from paycell.notifications import service

    with _context(database_url) as ctx:
        _print_detail(service.get_notification(ctx, notification_id))


@notifications_app.command("resend")
def resend(
    notification_id: str,
    operator: str = typer.Option(..., "--as", help="your operator name, for the log"),
    database_url: str | None = UrlOpt,
) -> None:
    """Deliver a notification once now (also one given up); print the attempt log. Exit
    status 1 if the merchant did not acknowledge it."""
    from paycell.notifications import service
    from paycell.operators.model import ROOT
    from paycell.operators.service import get_operator, require_role, root_operator

    with _context(database_url) as ctx:
        who = root_operator(ctx) if operator == ROOT else get_operator(ctx, operator)
        require_role(who)  # auditors only look
        d = service.resend(ctx, notification_id, who.name)
    _print_detail(d)
    last = d.attempt_log[-1]
    if not last.acknowledged:
        console.print(f"[yellow]not acknowledged[/]: {last.error}")
        raise typer.Exit(1)
