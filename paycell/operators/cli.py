"""``paycell operators ...``: add (prints the key once), list, disable; approvals: list,
approve, reject (acting as a named operator)."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from paycell.clikit import UrlOpt
from paycell.clikit import cli_context as _context
from paycell.clock import rfc3339
from paycell.console import console

operators_app = typer.Typer(help="Operators and maker-checker approvals.",
                            no_args_is_help=True)
AsOpt = typer.Option(..., "--as", help="the operator acting (by name)")


@operators_app.command("add")
def add(name: str, role: str = typer.Option("operator", "--role",
                                            help="admin, operator or auditor"),
        database_url: str | None = UrlOpt) -> None:
    """Add an operator and print its API key (shown this once; only its hash is kept)."""
    from paycell.operators.service import create_operator

    with _context(database_url) as ctx:
        op, key = create_operator(ctx, name, role)
        console.print(f"operator [bold]{op.name}[/] ({op.role}), id {op.id}")
        console.print(f"API key (shown once, send it as X-API-Key): [bold]{key}[/]")


@operators_app.command("list")
def list_(database_url: str | None = UrlOpt) -> None:
    """Every operator."""
    from paycell.operators.service import list_operators

    with _context(database_url) as ctx:
        table = Table(title="operators")
        for col in ("id", "name", "role", "state", "key", "created"):
            table.add_column(col)
        for r in list_operators(ctx):
            table.add_row(str(r["id"]), r["name"], r["role"], r["state"],
                          "yes" if r["has_key"] else "-", rfc3339(r["created_at"]))
        console.print(table)


@operators_app.command("disable")
def disable(name: str, database_url: str | None = UrlOpt) -> None:
    """Disable an operator: its key stops working at once."""
    from paycell.operators.service import disable_operator

    with _context(database_url) as ctx:
        disable_operator(ctx, name)
        console.print(f"operator {name} is disabled")


@operators_app.command("approvals")
def list_approvals(
    all_: bool = typer.Option(False, "--all", help="decided ones too (newest first)"),
    database_url: str | None = UrlOpt,
) -> None:
    """Approvals waiting for a second operator (or all of them)."""
    from paycell.operators import approvals

    with _context(database_url) as ctx:
        rows = (approvals.list_approvals(ctx, limit=100) if all_
                else approvals.list_pending(ctx))
        table = Table(title="approvals" if all_ else "pending approvals")
        for col in ("id", "action", "subject", "state", "proposed by", "when", "reason",
                    "decided by"):
            table.add_column(col)
        for a in rows:
            table.add_row(str(a.id), a.action, a.subject, a.state, a.proposed_by_name,
                          rfc3339(a.proposed_at), escape(a.reason), a.decided_by_name or "")
        console.print(table)


@operators_app.command("approve")
def approve(approval_id: int, as_: str = AsOpt, database_url: str | None = UrlOpt) -> None:
    """Approve (and so carry out) an approval proposed by another operator."""
    from paycell.operators import approvals
    from paycell.operators.service import get_operator

    with _context(database_url) as ctx:
        a = approvals.approve(ctx, get_operator(ctx, as_), approval_id)
        console.print(f"approval {a.id} ({a.action} {a.subject}) is [bold]{a.state}[/]: "
                      f"{escape(str(a.result))}")


@operators_app.command("reject")
def reject(approval_id: int, as_: str = AsOpt,
           note: str = typer.Option(..., "--note", help="why (kept with the approval)"),
           database_url: str | None = UrlOpt) -> None:
    """Reject a pending approval."""
    from paycell.operators import approvals
    from paycell.operators.service import get_operator

    with _context(database_url) as ctx:
        a = approvals.reject(ctx, get_operator(ctx, as_), approval_id, note)
        console.print(f"approval {a.id} ({a.action} {a.subject}) is [bold]{a.state}[/]")
