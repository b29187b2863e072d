"""``paycell reconcile``: statement files from banks, the carrier and the transit operator.

``import FILE --source bank`` imports and matches a statement (rich progress, a summary, a
bar chart of the classes and a report file); ``statements``, ``items`` list; ``resolve``
resolves or proposes (``paycell operators approve ID --as NAME`` for a second operator);
``bill`` writes a merchant's daily bill; ``simulate`` writes a statement from our records
with injected discrepancies (the demo's).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from paycell.clikit import UrlOpt, cli_context
from paycell.console import console
from paycell.money import format_amount
from paycell.reconciliation import matching
from paycell.reconciliation.matching import Summary

reconcile_app = typer.Typer(help="Reconciliation (对账): docs/reconciliation.md.",
                            no_args_is_help=True)
AsOpt = typer.Option("root", "--as", help="the operator acting (by name)")
COLOURS = {"matched": "green", "missing_ours": "red", "missing_theirs": "magenta",
           "amount_mismatch": "yellow", "duplicate": "cyan"}


def print_summary(s: Summary) -> None:
    """The statement's summary and a bar chart of its classes."""
    head = "imported" if s.created else "already imported (nothing changed)"
    console.print(f"[bold]statement {s.statement_id}[/]: {s.source} {escape(s.partner)} "
                  f"{s.business_date}, {s.lines} lines, {head}, [bold]{s.state}[/]")
    table = Table(title="classes")
    for col in ("class", "count", "amount", ""):
        table.add_column(col, justify="right" if col in ("count", "amount") else "left")
    top = max([s.counts.get(c, 0) for c in matching.CATEGORIES] + [1])
    for c in matching.CATEGORIES:
        n = s.counts.get(c, 0)
        bar = "█" * (0 if n == 0 else max(1, round(40 * n / top)))
        table.add_row(c, f"{n:,}", format_amount(s.amounts.get(c, 0)),
                      f"[{COLOURS[c]}]{bar}[/]")
    console.print(table)
    console.print(f"confirmed in {format_amount(s.confirmed_in_fen)}, out "
                  f"{format_amount(s.confirmed_out_fen)}; to suspense "
                  f"{format_amount(s.suspense_fen)} (net)")


@reconcile_app.command("import")
def import_(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
            source: str | None = typer.Option(None, "--source",
                                              help="bank | carrier | transit (checked)"),
            encoding: str | None = typer.Option(None, "--encoding",
                                                help="utf-8 | gbk (default: detected)"),
            actor: str = AsOpt, database_url: str | None = UrlOpt) -> None:
    """Import a statement file and match it. The same file again changes nothing."""
    from paycell.reconciliation import service

    with cli_context(database_url) as ctx, Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
            TimeElapsedColumn(), console=console.now(), transient=True) as progress:
        task = progress.add_task("reading", total=file.stat().st_size)
        summary = service.reconcile_file(
            ctx, file, source=source, encoding=encoding, actor=f"operator:{actor}",
            progress=lambda n: progress.update(task, completed=n),
            step=lambda text: progress.update(task, description=text))
        report = service.write_report(ctx, summary)
    print_summary(summary)
    console.print(f"report: {report}")


@reconcile_app.command("statements")
def statements(limit: int = typer.Option(20, min=1, max=500),
               database_url: str | None = UrlOpt) -> None:
    """Imported statements, newest first."""
    from paycell.reconciliation import service

    with cli_context(database_url) as ctx:
        rows = service.list_statements(ctx, limit=limit)
    table = Table(title=f"{len(rows)} statements")
    for col in ("id", "source", "partner", "date", "lines", "in", "out", "enc", "state",
                "classes"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["id"]), r["source"], escape(r["partner"]), r["business_date"],
                      f"{r['lines']:,}", format_amount(r["in_fen"]),
                      format_amount(r["out_fen"]), r["encoding"], r["state"],
                      ", ".join(f"{k} {v}" for k, v in sorted(r["counts"].items())))
    console.print(table)


@reconcile_app.command("items")
def items(state: str = typer.Option("open", help="open | resolved | all"),
          statement: int | None = typer.Option(None, "--statement"),
          limit: int = typer.Option(50, min=1, max=1000),
          database_url: str | None = UrlOpt) -> None:
    """Difference items (open by default), newest first, and what suspense holds."""
    from paycell.reconciliation import service

    with cli_context(database_url) as ctx:
        found = service.list_items(ctx, state=None if state == "all" else state,
                                   statement_id=statement, limit=limit)
    table = Table(title=f"{len(found)} items")
    for col in ("id", "stmt", "class", "kind", "dir", "reference", "theirs", "ours",
                "suspense", "state"):
        table.add_column(col)
    for i in found:
        table.add_row(str(i.id), str(i.statement_id), i.category, i.kind, i.direction,
                      escape(i.reference),
                      "" if i.their_amount_fen is None else format_amount(i.their_amount_fen),
                      "" if i.our_amount_fen is None else format_amount(i.our_amount_fen),
                      format_amount(i.suspense_fen), i.resolution or i.state)
    console.print(table)
    console.print(f"open suspense on this page: "
                  f"{format_amount(sum(i.suspense_fen for i in found if i.state == 'open'))}")


@reconcile_app.command("resolve")
def resolve_(item: int, action: str = typer.Option(..., help="accept | rematch | write_off "
                                                               "| pass_on"),
             note: str = typer.Option(..., help="why (logged)"),
             target: str | None = typer.Option(None, help="pass_on: wallet:<msisdn> or "
                                                          "merchant:<id>"),
             with_item: int | None = typer.Option(None, "--with", help="rematch: the other "
                                                                        "item"),
             actor: str = typer.Option(..., "--as", help="the operator acting (by name)"),
             database_url: str | None = UrlOpt) -> None:
    """Resolve an item (accept, rematch) or propose a money-moving resolution."""
    from paycell.operators.service import get_operator
    from paycell.reconciliation import resolve

    with cli_context(database_url) as ctx:
        out = resolve.resolve(ctx, get_operator(ctx, actor), item, action, note,
                              target=target, with_item=with_item)
    if out["state"] == "proposed":
        console.print(f"proposed as approval {out['approval_id']}: another operator runs "
                      f"`paycell operators approve {out['approval_id']} --as NAME`")
    else:
        console.print(f"item {item} resolved ({action})")


@reconcile_app.command("bill")
def bill(merchant_id: int = typer.Option(..., "--merchant-id"),
         day: str = typer.Option(..., "--date", help="YYYY-MM-DD"),
         out: Path | None = typer.Option(None, "--out", help="default: the reports dir"),
         database_url: str | None = UrlOpt) -> None:
    """Write a merchant's daily bill (the CSV the merchant API serves)."""
    from paycell.merchants.service import get_merchant
    from paycell.reconciliation import bills

    with cli_context(database_url) as ctx:
        m = get_merchant(ctx, merchant_id)
        bills.bill_window(ctx, day)
        path = out or Path(ctx.settings.reports_dir) / "bills" / f"bill-{m.code}-{day}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as f:
            for line in bills.bill_lines(ctx, m, day):
                f.write(line)
    console.print(f"bill of {m.code} for {day}: {path}")


@reconcile_app.command("simulate")
def simulate(source: str = typer.Option("bank", help="bank | carrier | transit"),
             partner: str = typer.Option(..., help="bank key, carrier name or merchant code"),
             day: str = typer.Option(..., "--date", help="YYYY-MM-DD"),
             out: Path = typer.Option(..., "--out"),
             encoding: str = typer.Option("gbk", help="utf-8 | gbk"),
             database_url: str | None = UrlOpt) -> None:
    """Write the statement a partner would send, from our records plus one discrepancy of
    each class (paycell/gateways/statement_sim.py)."""
    from paycell.gateways import statement_sim as sim
    from paycell.reconciliation.formats import Header, write

    with cli_context(database_url) as ctx:
        lines = sim.from_records(ctx, source, partner, date.fromisoformat(day))
    t = write(out, Header(source, partner, day, "CNY"), lines, encoding=encoding)
    console.print(f"{out}: {t.lines} lines, in {format_amount(t.in_fen)}, "
                  f"out {format_amount(t.out_fen)} ({encoding})")
