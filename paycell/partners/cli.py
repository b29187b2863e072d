"""``paycell partners``: channel partners and their fees (docs/partners.md).

``add`` registers a partner and proposes its activation (a second operator approves with
``paycell operators approve ID --as NAME``); ``attach-merchant`` / ``attach-terminal``;
``set-fee`` proposes a new expansion fee; ``accrue --month`` and ``check-expansion`` make
fees payable (progress, summary, report file); ``statement --month`` shows the month with a
bar per partner and writes the report."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from paycell.clikit import UrlOpt
from paycell.clikit import cli_context as _context
from paycell.clock import rfc3339
from paycell.console import console
from paycell.money import format_amount

if TYPE_CHECKING:
    from paycell.partners.fees import FeeRun
    from paycell.partners.statements import Statement, Totals

partners_app = typer.Typer(help="Channel partners: docs/partners.md.", no_args_is_help=True)
AsOpt = typer.Option(..., "--as", help="the operator acting (by name)")
BAR_WIDTH = 40


def _cny(fen: int) -> str:
    return f"{format_amount(fen)} CNY"


@contextmanager
def _progress(label: str) -> Iterator[Progress]:
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(),
                  console=console.now(), transient=True) as bar:
        yield bar


def _fen_option(text: str) -> int:
    from paycell.money import parse_amount
    from paycell.partners.errors import PartnerInvalidError

    try:
        return parse_amount(text)
    except ValueError as exc:
        raise PartnerInvalidError(f"an amount in CNY like 500.00: {exc}",
                                  field="expansion_fee_fen") from None


@partners_app.command("add")
def add(name: str,
        fee: str = typer.Option(..., "--fee", help="expansion fee per merchant, CNY (200-2000)"),
        phone: str = typer.Option(..., "--phone"),
        bank_name: str = typer.Option(..., "--bank-name"),
        holder: str = typer.Option(..., "--holder", help="the bank account's holder"),
        account: str = typer.Option(..., "--account", help="the bank account number"),
        reason: str = typer.Option("new channel partner", "--reason"),
        as_: str = AsOpt, database_url: str | None = UrlOpt) -> None:
    """Register a partner (pending) and propose its activation to a second operator."""
    from paycell.operators.service import get_operator
    from paycell.partners import service as svc

    with _context(database_url) as ctx:
        p, a = svc.register_partner(ctx, get_operator(ctx, as_), svc.PartnerApplication(
            name=name, contact_phone=phone, bank_name=bank_name, bank_account_holder=holder,
            bank_account_number=account, expansion_fee_fen=_fen_option(fee)), reason)
        console.print(f"partner [bold]{p.code}[/] {escape(p.name)} is {p.state}; expansion "
                      f"fee {_cny(p.expansion_fee_fen)}, bank account ****"
                      f"{p.bank_account_last4}")
        console.print(f"approval {a.id} waits for a second operator: "
                      f"paycell operators approve {a.id} --as NAME")


@partners_app.command("list")
def list_(database_url: str | None = UrlOpt) -> None:
    """Every partner, newest first."""
    from paycell.partners import service as svc

    with _context(database_url) as ctx:
        table = Table(title="channel partners")
        for col in ("code", "name", "state", "expansion fee", "bank", "payable account",
                    "registered"):
            table.add_column(col)
        for p in svc.list_partners(ctx, limit=1000):
            table.add_row(p.code, escape(p.name), p.state, _cny(p.expansion_fee_fen),
                          f"{escape(p.bank_name)} ****{p.bank_account_last4}",
                          str(p.payable_account_id or ""), rfc3339(p.created_at))
        console.print(table)


@partners_app.command("set-fee")
def set_fee(partner: str, fee: str = typer.Option(..., "--fee", help="CNY, 200-2000"),
            reason: str = typer.Option(..., "--reason"), as_: str = AsOpt,
            database_url: str | None = UrlOpt) -> None:
    """Propose a new expansion fee; a second operator approves."""
    from paycell.operators.service import get_operator
    from paycell.partners import service as svc

    with _context(database_url) as ctx:
        p = svc.find_partner(ctx, partner)
        a = svc.propose_fee_change(ctx, get_operator(ctx, as_), p.id, _fen_option(fee), reason)
        console.print(f"approval {a.id}: {p.code} expansion fee "
                      f"{_cny(p.expansion_fee_fen)} -> {fee} CNY, waiting for a second "
                      "operator")


def _attach(kind: str, partner: str, subject: str, detach: bool, as_: str,
            database_url: str | None) -> None:
    from paycell.operators.service import get_operator
    from paycell.partners import service as svc

    with _context(database_url) as ctx:
        p = svc.find_partner(ctx, partner)
        op = get_operator(ctx, as_)
        if detach:
            (svc.detach_merchant if kind == "merchant" else svc.detach_terminal)(
                ctx, op, p.id, subject)
            console.print(f"{kind} {subject} detached from {p.code}")
            return
        changed = (svc.attach_merchant if kind == "merchant" else svc.attach_terminal)(
            ctx, op, p.id, subject)
        console.print(f"{kind} {subject} {'attached to' if changed else 'was already with'} "
                      f"{p.code}")


@partners_app.command("attach-merchant")
def attach_merchant(partner: str, merchant: str,
                    detach: bool = typer.Option(False, "--detach", help="end the attachment"),
                    as_: str = AsOpt, database_url: str | None = UrlOpt) -> None:
    """Attach a merchant (M100001) to a partner (P10001), or detach it."""
    _attach("merchant", partner, merchant, detach, as_, database_url)


@partners_app.command("attach-terminal")
def attach_terminal(partner: str, terminal: str,
                    detach: bool = typer.Option(False, "--detach", help="end the attachment"),
                    as_: str = AsOpt, database_url: str | None = UrlOpt) -> None:
    """Attach a POS terminal (T12345678) to a partner, or detach it."""
    _attach("terminal", partner, terminal, detach, as_, database_url)


def _fee_table(title: str, run: FeeRun) -> Table:
    table = Table(title=title)
    for col in ("partner id", "kind", "detail", "amount", "transfer"):
        table.add_column(col)
    for f in run.created:
        detail = (f"merchant {f.merchant_id}" if f.kind == "expansion_fee"
                  else f"{f.terminals} terminals")
        table.add_row(str(f.partner_id), f.kind, detail, _cny(f.amount_fen), f.transfer_id)
    return table


@partners_app.command("accrue")
def accrue(month: str = typer.Option(..., "--month", help="YYYY-MM, a month that is over"),
           database_url: str | None = UrlOpt) -> None:
    """Accrue the month's POS maintenance fees (one transfer per partner); re-running a
    month changes nothing. Writes the month's partner report."""
    from paycell.partners import fees, statements

    with _context(database_url) as ctx, _progress(f"accruing {month}") as bar:
        task = bar.add_task("accrue", total=None)
        run = fees.accrue_maintenance(
            ctx, month, progress=lambda done, total: bar.update(task, completed=done,
                                                                 total=total))
        bar.stop()
        console.print(_fee_table(f"POS maintenance {month}", run))
        path = statements.write_summary(ctx, month, statements.month_summary(ctx, month))
        console.print(f"{len(run.created)} partners accrued, {_cny(run.amount_fen)}; "
                      f"{run.existing} already done; report {path}")


@partners_app.command("check-expansion")
def check_expansion(database_url: str | None = UrlOpt) -> None:
    """Pay the expansion fee of every merchant whose condition holds now (once, ever)."""
    from paycell.partners import fees, statements

    with _context(database_url) as ctx, _progress("expansion fees") as bar:
        task = bar.add_task("check", total=None)
        run = fees.check_expansion(
            ctx, progress=lambda done, total: bar.update(task, completed=done, total=total))
        bar.stop()
        console.print(_fee_table("expansion fees made payable", run))
        day = run.created[0].business_date if run.created else None
        path = _expansion_report(statements.reports_dir(ctx), run, day)
        console.print(f"{len(run.created)} expansion fees, {_cny(run.amount_fen)}; "
                      f"{run.existing} already paid; report {path}")


def _expansion_report(folder: Path, run: FeeRun, day: str | None) -> Path:
    import csv

    path = folder / f"expansion-{day or 'none'}.csv"
    with path.open("a" if path.exists() else "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        if fh.tell() == 0:
            w.writerow(["business_date", "partner_id", "merchant_id", "amount_fen",
                        "transfer_id"])
        for f in run.created:
            w.writerow([f.business_date, f.partner_id, f.merchant_id, f.amount_fen,
                        f.transfer_id])
    return path


@partners_app.command("statement")
def statement(month: str = typer.Option(..., "--month", help="YYYY-MM"),
              partner: str | None = typer.Option(None, "--partner", help="P10001: in detail"),
              database_url: str | None = UrlOpt) -> None:
    """A month's statement: every partner with a bar of fees accrued (paid out in green),
    or one partner in detail. Writes the report file."""
    from paycell.partners import service as svc
    from paycell.partners import statements as st

    with _context(database_url) as ctx:
        if partner is None:
            rows = st.month_summary(ctx, month)
            _chart(month, rows)
            path = st.write_summary(ctx, month, rows)
        else:
            s = st.partner_statement(ctx, svc.find_partner(ctx, partner).id, month)
            _detail(s)
            path = st.write_statement(ctx, s)
        console.print(f"report {path}")


def _chart(month: str, rows: list[Totals]) -> None:
    top = max((t.accrued_fen for t in rows), default=0) or 1
    table = Table(title=f"channel partners, {month}")
    for col in ("partner", "merchants", "terminals", "accrued", "paid out", ""):
        table.add_column(col)
    for t in rows:
        paid = round(BAR_WIDTH * t.paid_out_fen / top)
        owed = round(BAR_WIDTH * t.accrued_fen / top) - paid
        table.add_row(f"{t.code} {escape(t.name)}", str(t.merchants), str(t.terminals),
                      _cny(t.accrued_fen), _cny(t.paid_out_fen),
                      f"[green]{'█' * paid}[/][yellow]{'█' * owed}[/]")
    console.print(table)
    console.print(f"total accrued {_cny(sum(t.accrued_fen for t in rows))}, paid out "
                  f"{_cny(sum(t.paid_out_fen for t in rows))} "
                  "([green]█[/] paid out, [yellow]█[/] not yet)")


def _detail(s: Statement) -> None:
    t = s.totals
    console.print(f"[bold]{s.partner.code}[/] {escape(s.partner.name)}, {s.month}: "
                  f"{t.merchants} merchants, {t.terminals} terminals counted")
    table = Table(title="fees")
    for col in ("date", "kind", "detail", "amount", "paid out"):
        table.add_column(col)
    for f in s.fees:
        detail = (f"merchant {f.merchant_code}" if f.kind == "expansion_fee"
                  else f"{f.terminals} terminals, {f.month}")
        table.add_row(f.business_date, f.kind, detail, _cny(f.amount_fen),
                      "yes" if f.paid_out else "no")
    console.print(table)
    for m in s.merchants:
        console.print(f"  merchant {m['code']} {escape(m['name'])}"
                      f"{' (expansion fee paid)' if m['expansion_fee_paid'] else ''}")
    for x in s.terminals:
        console.print(f"  terminal {x['terminal_id']} of {x['merchant_code']} ({x['state']})"
                      f"{'' if x['counted'] else ' not counted'}")
    console.print(f"accrued {_cny(t.accrued_fen)}, paid out {_cny(t.paid_out_fen)}, "
                  f"not yet {_cny(t.unpaid_fen)}")
