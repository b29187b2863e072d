"""``paycell payments ...``: operators' view of payment orders and escrow disputes.

``list`` and ``show`` read; ``disputes`` lists open disputes; ``resolve`` proposes a
decision (a second operator approves it with ``paycell operators approve ID --as NAME``);
``run-jobs`` runs the payments job once (expiry, escrow auto-release) now.
"""

from __future__ import annotations

from collections import Counter

import typer
from rich.markup import escape
from rich.table import Table

from paycell.clikit import UrlOpt, cli_context
from paycell.clock import rfc3339
from paycell.console import console
from paycell.money import format_amount
from paycell.payments import escrow  # also registers the dispute approval handler

payments_app = typer.Typer(help="Payment orders (remote payments, escrow) and disputes.",
                           no_args_is_help=True)
AsOpt = typer.Option(..., "--as", help="the operator acting (by name)")


def _t(us: int | None) -> str:
    return rfc3339(us) if us else ""


@payments_app.command("list")
def list_orders(
    merchant_id: int | None = typer.Option(None, "--merchant-id"),
    state: list[str] = typer.Option([], "--state", help="repeatable"),
    limit: int = typer.Option(50, min=1, max=1000),
    database_url: str | None = UrlOpt,
) -> None:
    """The newest orders, with a count per state."""
    from paycell.payments.orders import list_orders as load

    with cli_context(database_url) as ctx:
        items = load(ctx, merchant_id=merchant_id, states=tuple(state), limit=limit)
    table = Table(title=f"{len(items)} payment orders")
    for col in ("trade_no", "merchant", "out_trade_no", "kind", "state", "amount",
                "refunded", "via", "created"):
        table.add_column(col)
    for o in items:
        table.add_row(o.trade_no, str(o.merchant_id), escape(o.out_trade_no), o.kind, o.state,
                      format_amount(o.amount_fen), format_amount(o.refunded_fen),
                      o.paid_via or "", _t(o.created_at))
    console.print(table)
    counts = Counter(o.state for o in items)
    console.print(", ".join(f"{s}: {n}" for s, n in sorted(counts.items())) or "no orders")


@payments_app.command("show")
def show(trade_no: str, database_url: str | None = UrlOpt) -> None:
    """One order: its fields, state history and refunds."""
    from paycell.payments.orders import events_of, get_order
    from paycell.payments.refunds import refunds_of

    with cli_context(database_url) as ctx:
        o = get_order(ctx, trade_no)
        events, refunds = events_of(ctx, o.id), refunds_of(ctx, o.id)
    console.print(f"[bold]{o.trade_no}[/] ({escape(o.out_trade_no)}) merchant {o.merchant_id}: "
                  f"{o.kind} {format_amount(o.amount_fen)} {o.currency} "
                  f"\"{escape(o.subject)}\" is [bold]{o.state}[/]")
    console.print(f"payer {o.payer_msisdn}; expires {_t(o.expires_at)}; paid {_t(o.paid_at)} "
                  f"via {o.paid_via or '-'}; release at {_t(o.release_at) or '-'}")
    history = Table(title="history")
    for col in ("at", "from", "to", "by", "note"):
        history.add_column(col)
    for e in events:
        history.add_row(rfc3339(e.at), e.from_state or "", e.to_state, e.actor,
                        escape(e.note or ""))
    console.print(history)
    if refunds:
        t = Table(title="refunds")
        for col in ("refund_no", "out_request_no", "amount", "source", "at"):
            t.add_column(col)
        for r in refunds:
            t.add_row(r.refund_no, escape(r.out_request_no), format_amount(r.amount_fen),
                      r.source, rfc3339(r.created_at))
        console.print(t)


@payments_app.command("disputes")
def disputes(state: str = typer.Option("open", help="open or resolved"),
             database_url: str | None = UrlOpt) -> None:
    """Escrow disputes waiting for a decision (or resolved ones)."""
    with cli_context(database_url) as ctx:
        items = [(d, escrow.get_order_by_id(ctx, d.order_id))
                 for d in escrow.list_disputes(ctx, state)]
    table = Table(title=f"{len(items)} {state} disputes")
    for col in ("id", "trade_no", "amount", "reason", "opened", "outcome"):
        table.add_column(col)
    for d, o in items:
        outcome = (f"{d.outcome}: {format_amount(d.buyer_fen or 0)} back" if d.outcome
                   else "")
        table.add_row(str(d.id), o.trade_no, format_amount(o.amount_fen), escape(d.reason),
                      rfc3339(d.created_at), outcome)
    console.print(table)


@payments_app.command("resolve")
def resolve(
    dispute_id: int,
    outcome: str = typer.Option(..., help="refund, release or split"),
    buyer_fen: int | None = typer.Option(None, help="split: fen back to the buyer"),
    as_: str = AsOpt, note: str | None = typer.Option(None),
    database_url: str | None = UrlOpt,
) -> None:
    """Propose a decision; another operator approves it (paycell operators approve)."""
    from paycell.operators.service import get_operator

    with cli_context(database_url) as ctx:
        a = escrow.propose_resolution(ctx, get_operator(ctx, as_), dispute_id, outcome,
                                      buyer_fen, note)
    console.print(f"approval [bold]{a.id}[/] proposed: {escape(a.reason)}; another operator "
                  f"runs `paycell operators approve {a.id} --as NAME`")


@payments_app.command("run-jobs")
def run_jobs(database_url: str | None = UrlOpt) -> None:
    """Close expired orders and release escrow that is due, now."""
    from paycell.payments.jobs import run_payment_jobs

    with cli_context(database_url) as ctx:
        n = run_payment_jobs(ctx)
    console.print(f"{n} orders changed")
