"""The clearing report of a business date: a CSV file, one line per merchant and a total
line, written (streamed) under ``settings.reports_dir/settlement``."""

from __future__ import annotations

import csv
import os
import threading
from pathlib import Path

from paycell.context import Context
from paycell.settlement.clearing import iter_rows

COLUMNS = ("business_date", "merchant_id", "merchant_name", "rule_kind", "sales_count",
           "gross_fen", "refund_count", "refunds_fen", "commission_fen",
           "commission_returned_fen", "deductions_fen", "card_fee_fen", "net_fen")
SUMMED = COLUMNS[4:]


def report_path(ctx: Context, business_date: str) -> Path:
    return Path(ctx.settings.reports_dir) / "settlement" / f"clearing-{business_date}.csv"


def write_report(ctx: Context, business_date: str) -> tuple[Path, list[tuple[str, int]]]:
    """Write the report; return its path and the (merchant, net) pairs for a chart (the 20
    largest)."""
    path = report_path(ctx, business_date)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")  # this writer's own
    totals = dict.fromkeys(SUMMED, 0)
    top: list[tuple[str, int]] = []
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in iter_rows(ctx, business_date):
            r["merchant_name"] = r.pop("name")
            w.writerow([r[c] for c in COLUMNS])
            for c in SUMMED:
                totals[c] += r[c]
            top.append((r["merchant_name"], r["net_fen"]))
            if len(top) > 200:
                top = sorted(top, key=lambda x: -x[1])[:20]
        w.writerow(["TOTAL", "", "", "", *[totals[c] for c in SUMMED]])
    os.replace(tmp, path)
    return path, sorted(top, key=lambda x: -x[1])[:20]
