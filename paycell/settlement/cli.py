"""``paycell settle``: clearing, settlement payouts and commission rules.

``run --date D`` clears a business date (progress bar, summary, report file, a bar chart of
net payable per merchant); ``payouts --date D`` makes the date's payout batch and file;
``result FILE`` imports the bank's answer; ``bank-sim FILE`` plays the bank (test and demo);
``rules`` / ``rule-set`` and ``deductions`` / ``deduct`` (maker-checker: another operator
approves with ``paycell operators approve ID --as NAME``); ``holds`` / ``hold-clear``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from paycell.clikit import UrlOpt, cli_context
from paycell.console import console
from paycell.money import format_amount

settle_app = typer.Typer(help="Clearing (清分) and settlement (结算): docs/settlement.md. "
                         "`paycell settle --date D` clears D (the same as `settle run`).",
                         invoke_without_command=True)
DateOpt = typer.Option(..., "--date", help="business date YYYY-MM-DD (CST)")
AsOpt = typer.Option(..., "--as", help="the operator acting (by name)")


def _date(text: str) -> dt.date:
    from paycell.settlement.calendar import parse_date

    try:
        return parse_date(text)
    except ValueError as exc:
        console.print(f"[red]settlement_invalid[/]: {exc}")
        raise typer.Exit(2) from None


def bar_chart(title: str, rows: list[tuple[str, int]], width: int = 40) -> None:
    """Rich bar rows: one per label, scaled to the largest absolute value."""
    if not rows:
        return
    top = max(abs(v) for _, v in rows) or 1
    console.print(f"[bold]{title}[/]")
    for label, value in rows:
        n = round(abs(value) * width / top)
        colour = "green" if value >= 0 else "red"
        console.print(f"{escape(label[:24]):<24} [{colour}]{'█' * n}[/] {format_amount(value)}")


@settle_app.command("run")
def run(date: str = DateOpt, database_url: str | None = UrlOpt) -> None:
    """Clear a business date for every merchant (idempotent) and write its report."""
    from paycell.settlement import clearing, report

    day = _date(date)
    with cli_context(database_url) as ctx, Progress(
            TextColumn(f"clearing {day}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("clearing", total=None)
        res = clearing.clear_date(ctx, day, actor="cli",
                                  progress=lambda n, total: bar.update(task, completed=n,
                                                                       total=total))
        bar.stop()
        path, top = report.write_report(ctx, res.business_date)
    console.print(f"cleared {res.business_date}: {res.merchants} merchants "
                  f"({res.cleared_now} now), gross {format_amount(res.gross_fen)}, refunds "
                  f"{format_amount(res.refunds_fen)}, commission "
                  f"{format_amount(res.commission_fen)}, net payable "
                  f"{format_amount(res.net_fen)} CNY")
    if res.blocked:
        console.print(f"[yellow]blocked (payable cannot take the commission):[/] "
                      f"{', '.join(map(str, res.blocked))}")
    bar_chart("net payable per merchant (CNY)", top)
    console.print(f"report: {path}")


@settle_app.callback()
def settle_main(ctx: typer.Context,
                date: str | None = typer.Option(None, "--date",
                                                help="clear this business date (YYYY-MM-DD)"),
                database_url: str | None = UrlOpt) -> None:
    """``paycell settle --date D``: clear D; ``paycell settle`` alone: this help."""
    if ctx.invoked_subcommand is not None:
        return
    if date is None:
        console.print(ctx.get_help())
        raise typer.Exit(0)
    run(date=date, database_url=database_url)


@settle_app.command("payouts")
def payouts_cmd(date: str = DateOpt, database_url: str | None = UrlOpt) -> None:
    """Make the T+1 payout batch of a cleared date and write the payout file."""
    from paycell.settlement import payouts

    day = _date(date)
    with cli_context(database_url) as ctx:
        b = payouts.run_batch(ctx, day, actor="cli")
        holds = payouts.list_holds(ctx)
    console.print(f"batch {b['id']} for {b['business_date']}: {b['payout_count']} payouts, "
                  f"{format_amount(b['total_fen'])} CNY to {b['bank']}")
    if holds:
        console.print(f"[yellow]{len(holds)} parties on payout hold[/] (paycell settle holds)")
    console.print(f"payout file: {b['file']}")


@settle_app.command("result")
def result(file: Path, database_url: str | None = UrlOpt) -> None:
    """Import the bank's result file for a payout batch (idempotent)."""
    from paycell.settlement import payouts

    with cli_context(database_url) as ctx:
        out = payouts.import_result(ctx, file)
    console.print(f"paid {out['paid']}, returned {out['returned']}, already applied "
                  f"{out['already']}")
    if out["returned"]:
        console.print("[yellow]returned payouts put their parties on hold:[/] "
                      "paycell settle holds")


@settle_app.command("bank-sim")
def bank_sim(file: Path, out: Path | None = typer.Option(None, help="result file path")) -> None:
    """Play the bank: answer a payout file with a result file (accounts ending 0000 or
    9999 are returned)."""
    from paycell.gateways.payout_sim import answer

    target = out or file.with_name(file.stem + "-result.csv")
    counts = answer(file, target)
    console.print(f"{counts}; result file: {target}")


@settle_app.command("rules")
def rules_cmd(merchant_id: int = typer.Option(..., "--merchant-id"),
              database_url: str | None = UrlOpt) -> None:
    """A merchant's commission rule versions."""
    from paycell.settlement import commissions

    with cli_context(database_url) as ctx:
        versions = commissions.rule_history(ctx, merchant_id)
    table = Table(title=f"commission rules of merchant {merchant_id}")
    for col in ("effective from", "kind", "params", "proposed by", "approved by"):
        table.add_column(col)
    for v in versions:
        table.add_row(v.effective_from, v.rule.kind, json.dumps(v.rule.params),
                      v.proposed_by, v.approved_by)
    console.print(table if versions else "no rule: commission none")


@settle_app.command("rule-set")
def rule_set(merchant_id: int = typer.Option(..., "--merchant-id"),
             kind: str = typer.Option(...), params: str = typer.Option("{}", help="JSON"),
             effective_from: str = typer.Option(..., "--from", help="YYYY-MM-DD"),
             reason: str = typer.Option(...), as_: str = AsOpt,
             database_url: str | None = UrlOpt) -> None:
    """Propose a commission rule; another operator approves it."""
    from paycell.operators.service import get_operator
    from paycell.settlement import commissions

    try:
        body = json.loads(params)
    except ValueError:
        console.print("[red]commission_rule_invalid[/]: --params is a JSON object")
        raise typer.Exit(2) from None
    with cli_context(database_url) as ctx:
        a = commissions.propose_rule(ctx, get_operator(ctx, as_), merchant_id=merchant_id,
                                     effective_from=effective_from, kind=kind, params=body,
                                     reason=reason)
    console.print(f"approval {a.id} proposed; another operator approves it with "
                  f"`paycell operators approve {a.id} --as NAME`")


@settle_app.command("deduct")
def deduct(merchant_id: int = typer.Option(..., "--merchant-id"), date: str = DateOpt,
           amount: str = typer.Option(..., help="CNY, e.g. 55.00"),
           reason: str = typer.Option(...), as_: str = AsOpt,
           database_url: str | None = UrlOpt) -> None:
    """Propose a deduction from a merchant's settlement of a date not cleared yet."""
    from paycell.money import parse_amount
    from paycell.operators.service import get_operator
    from paycell.settlement import commissions

    with cli_context(database_url) as ctx:
        a = commissions.propose_deduction(ctx, get_operator(ctx, as_), merchant_id=merchant_id,
                                          business_date=date, amount_fen=parse_amount(amount),
                                          reason=reason)
    console.print(f"approval {a.id} proposed")


@settle_app.command("deductions")
def deductions(date: str | None = typer.Option(None, "--date"),
               database_url: str | None = UrlOpt) -> None:
    """Approved deductions."""
    from paycell.settlement import commissions

    with cli_context(database_url) as ctx:
        rows = commissions.deductions_of(ctx, business_date=date)
    table = Table(title=f"{len(rows)} deductions")
    for col in ("date", "merchant", "amount", "reason", "approved by"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["business_date"], str(r["merchant_id"]), format_amount(r["amount_fen"]),
                      escape(r["reason"]), r["approved_by"])
    console.print(table)


@settle_app.command("holds")
def holds(database_url: str | None = UrlOpt) -> None:
    """Parties on payout hold after a returned payout (flagged for operations)."""
    from paycell.settlement import payouts

    with cli_context(database_url) as ctx:
        rows = payouts.list_holds(ctx)
    table = Table(title=f"{len(rows)} open payout holds")
    for col in ("id", "party", "reason", "since"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["id"]), f"{r['party_kind']} {r['party_id']}", escape(r["reason"]),
                      str(r["created_at"]))
    console.print(table)


@settle_app.command("hold-clear")
def hold_clear(hold_id: int, note: str = typer.Option(...), as_: str = AsOpt,
               database_url: str | None = UrlOpt) -> None:
    """Clear a payout hold once the bank details are fixed."""
    from paycell.operators.service import get_operator
    from paycell.settlement import payouts

    with cli_context(database_url) as ctx:
        h = payouts.clear_hold(ctx, get_operator(ctx, as_), hold_id, note)
    console.print(f"hold {h['id']} {h['state']} by {h['cleared_by']}")
