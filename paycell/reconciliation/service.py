"""Reconciliation use cases: import and match a statement file, list statements and items,
write the report. Resolutions: ``resolve.py``; merchant bills: ``bills.py``."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from paycell.context import Context
from paycell.money import format_amount
from paycell.reconciliation import importing, matching
from paycell.reconciliation.errors import StatementNotFoundError
from paycell.reconciliation.matching import Summary
from paycell.reconciliation.tables import items, statements


@dataclass(frozen=True)
class Item:
    id: int
    statement_id: int
    source: str
    partner: str
    category: str
    kind: str
    direction: str
    reference: str
    their_amount_fen: int | None
    our_amount_fen: int | None
    suspense_fen: int
    counter: str
    state: str
    resolution: str | None
    created_at: int
    resolved_at: int | None

    @classmethod
    def of(cls, r: Any) -> Item:
        return cls(r.id, r.statement_id, r.source, r.partner, r.category, r.kind,
                   r.direction, r.reference, r.their_amount_fen, r.our_amount_fen,
                   r.suspense_fen, r.counter, r.state, r.resolution, r.created_at,
                   r.resolved_at)


def reconcile_file(ctx: Context, path: Path, *, source: str | None = None,
                   encoding: str | None = None, actor: str = "system",
                   progress: importing.Progress | None = None,
                   step: Any = None) -> Summary:
    """Import a statement file and match it. Idempotent: the same file again returns the
    first import's summary (``created`` False) and moves nothing. Raises the import's
    refusals (StatementInvalidError ...) and CustodyReserveShortError."""
    imported = importing.import_file(ctx, path, source=source, encoding=encoding,
                                     actor=actor, progress=progress)
    summary = matching.match(ctx, imported.statement_id, step=step)
    summary.created = imported.created
    return summary


def get_statement(ctx: Context, statement_id: int) -> Summary:
    with ctx.engine.connect() as conn:
        st = conn.execute(select(statements).where(statements.c.id == statement_id)).first()
        if st is None:
            raise StatementNotFoundError(f"statement {statement_id} does not exist")
        return matching.summarise(conn, st)


def list_statements(ctx: Context, *, limit: int = 50) -> list[dict[str, Any]]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(statements).order_by(statements.c.id.desc()).limit(limit))
        return [{"id": r.id, "source": r.source, "partner": r.partner,
                 "business_date": r.business_date, "lines": r.lines, "in_fen": r.in_fen,
                 "out_fen": r.out_fen, "encoding": r.encoding, "state": r.state,
                 "filename": r.filename, "counts": json.loads(r.summary_json or "{}")
                 .get("counts", {}), "created_at": r.created_at} for r in rows]


def list_items(ctx: Context, *, state: str | None = "open", statement_id: int | None = None,
               before_id: int | None = None, limit: int = 100) -> list[Item]:
    """Difference items, newest first."""
    stmt = select(items).order_by(items.c.id.desc()).limit(limit)
    if state is not None:
        stmt = stmt.where(items.c.state == state)
    if statement_id is not None:
        stmt = stmt.where(items.c.statement_id == statement_id)
    if before_id is not None:
        stmt = stmt.where(items.c.id < before_id)
    with ctx.engine.connect() as conn:
        return [Item.of(r) for r in conn.execute(stmt)]


def write_report(ctx: Context, summary: Summary) -> Path:
    """The statement's report: a summary block and one CSV row per difference, under
    ``settings.reports_dir``/reconciliation/. Streams the items."""
    out = Path(ctx.settings.reports_dir) / "reconciliation"
    out.mkdir(parents=True, exist_ok=True)
    path = out / (f"recon-{summary.source}-{summary.partner}-{summary.business_date}-"
                  f"{summary.statement_id}.csv")
    with path.open("w", encoding="utf-8", newline="") as f, ctx.engine.connect() as conn:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["# statement", summary.statement_id, summary.source, summary.partner,
                    summary.business_date, f"{summary.lines} lines"])
        for cat in matching.CATEGORIES:
            w.writerow(["# " + cat, summary.counts.get(cat, 0),
                        format_amount(summary.amounts.get(cat, 0))])
        w.writerow(["# confirmed in", format_amount(summary.confirmed_in_fen),
                    "confirmed out", format_amount(summary.confirmed_out_fen),
                    "to suspense", format_amount(summary.suspense_fen)])
        w.writerow(["item", "category", "kind", "direction", "reference", "their_amount",
                    "our_amount", "suspense", "state"])
        rows = conn.execution_options(yield_per=5000).execute(
            select(items).where(items.c.statement_id == summary.statement_id)
            .order_by(items.c.id))
        for r in rows:
            w.writerow([r.id, r.category, r.kind, r.direction, r.reference,
                        "" if r.their_amount_fen is None else format_amount(r.their_amount_fen),
                        "" if r.our_amount_fen is None else format_amount(r.our_amount_fen),
                        format_amount(r.suspense_fen), r.state])
    return path
