"""The merchant daily bill (商户对账单), modelled on Alipay's trade bill: one CSV line per
transaction of a business date that reached the merchant's payable account (remote
payments, escrow releases, refunds, POS taps and refunds, transit e-cash fares), then a
summary trailer. Built from the ledger's journal by ``timestamp`` (one query), streamed.

```
#paycell merchant bill
#merchant,M1001,Inkwell Books
#business date,2026-11-25,2026-11-25T00:00:00+08:00,2026-11-26T00:00:00+08:00
time,type,trade_no,out_trade_no,refund_no,out_request_no,subject,amount,transfer_id
2026-11-25T10:00:00+08:00,payment,P…,ORD-1,,,Two paperbacks,49.90,pay:P…
#summary,sales,1,49.90,refunds,0,0.00,net,49.90
#end
```
Amounts in yuan with two decimals; refunds negative. The merchant is the one who signed
the request: there is no way to name another.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from paycell.context import Context
from paycell.ledger.chart import TransferCode as T
from paycell.merchants.model import Merchant
from paycell.money import format_amount
from paycell.reconciliation.errors import BillDateInvalidError, BillDateNotOverError
from paycell.settlement.calendar import CST, parse_date, window

TYPES = {int(T.PURCHASE): "payment", int(T.ESCROW_CONFIRM): "escrow_release",
         int(T.REFUND): "refund", int(T.POS_PURCHASE): "pos", int(T.POS_REFUND): "pos_refund",
         int(T.ECASH_CLEAR): "transit_fare"}
COLUMNS = ["time", "type", "trade_no", "out_trade_no", "refund_no", "out_request_no",
           "subject", "amount", "transfer_id"]

_SQL = f"""
SELECT t.id, t.timestamp, t.code, t.amount, t.credit_account_id,
       COALESCE(po.trade_no, po2.trade_no) AS trade_no,
       COALESCE(po.out_trade_no, po2.out_trade_no) AS out_trade_no,
       COALESCE(po.subject, po2.subject) AS subject, pr.refund_no, pr.out_request_no
FROM ledger_transfers t
LEFT JOIN payment_orders po ON po.merchant_id = :m
     AND (t.id = 'pay:' || po.trade_no OR t.id = 'pay:' || po.trade_no || '\\:release')
LEFT JOIN payment_refunds pr ON t.id = 'refund:' || pr.refund_no
LEFT JOIN payment_orders po2 ON po2.id = pr.order_id
WHERE t.timestamp >= :lo AND t.timestamp < :hi
  AND (t.debit_account_id = :a OR t.credit_account_id = :a)
  AND t.code IN ({", ".join(str(c) for c in TYPES)}) AND (t.flags & 10) = 0
ORDER BY t.seq
"""


def bill_window(ctx: Context, day: str) -> tuple[int, int]:
    """The date's window; BillDateInvalidError (format), BillDateNotOverError (not over)."""
    try:
        d = parse_date(day)
    except ValueError as exc:
        raise BillDateInvalidError(str(exc), field="date") from None
    lo, hi = window(d, ctx.settings.clearing_cutoff)
    if hi > ctx.clock.now_us():
        raise BillDateNotOverError(f"business date {day} is not over yet; its bill is ready "
                                   "after its cut-off", date=day)
    return lo, hi


def _time(us: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)).astimezone(
        CST).isoformat(timespec="seconds")


def _csv(row: Sequence[object]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(row)
    return buf.getvalue()


def bill_lines(ctx: Context, merchant: Merchant, day: str) -> Iterator[str]:
    """The bill, line by line (call :func:`bill_window` first to refuse a bad date before
    anything is sent)."""
    lo, hi = bill_window(ctx, day)
    yield "#paycell merchant bill\n"
    yield _csv(["#merchant", merchant.code, merchant.name])
    yield _csv(["#business date", day, _time(lo), _time(hi)])
    yield _csv(COLUMNS)
    sales = refunds = sales_fen = refunds_fen = 0
    account = merchant.payable_account_id or 0
    with ctx.engine.connect() as conn:
        rows = conn.execution_options(yield_per=2000).execute(
            text(_SQL), {"m": merchant.id, "lo": lo, "hi": hi, "a": account})
        for r in rows:
            signed = r.amount if r.credit_account_id == account else -r.amount
            if signed >= 0:
                sales, sales_fen = sales + 1, sales_fen + signed
            else:
                refunds, refunds_fen = refunds + 1, refunds_fen + signed
            yield _csv([_time(r.timestamp), TYPES[r.code], r.trade_no or "",
                        r.out_trade_no or "", r.refund_no or "", r.out_request_no or "",
                        r.subject or "", format_amount(signed), r.id])
    yield _csv(["#summary", "sales", sales, format_amount(sales_fen), "refunds", refunds,
                format_amount(refunds_fen), "net", format_amount(sales_fen + refunds_fen)])
    yield "#end\n"
