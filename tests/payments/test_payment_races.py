"""Races on one order, on both databases: concurrent refunds never exceed what was paid;
a confirm racing a close ends either paid or closed, never both; concurrent confirms pay
once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from payment_helpers import PIN, balance, fund, wallet  # type: ignore[import-not-found]

from paycell.errors import PaycellError
from paycell.payments import orders, paying, refunds


def _race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at once; each result or the error's code."""
    out: list[Any] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(i: int) -> None:
        start.wait()
        try:
            out[i] = calls[i]()
        except PaycellError as exc:
            out[i] = exc.code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def _order(ctx: Any, shop: Any, buyer: Any, n: int) -> orders.Order:
    order, _ = orders.create_order(ctx, shop.merchant, orders.OrderRequest(
        out_trade_no=f"RACE-{n}", amount_fen=4990, subject="race", payer_msisdn=buyer.msisdn))
    return order


def test_concurrent_refunds_never_exceed_the_payment(client, ctx, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, _ = wallet(ctx)
    fund(ctx, buyer, 10_000)
    order = paying.confirm_order(ctx, buyer, _order(ctx, shop, buyer, 1).trade_no, PIN)
    results = _race(*[
        (lambda i=i: refunds.refund_order(ctx, shop.merchant, trade_no=order.trade_no,
                                          out_request_no=f"R{i}", amount_fen=1000))
        for i in range(6)])
    codes = Counter(r if isinstance(r, str) else "ok" for r in results)
    assert codes == {"ok": 4, "refund_exceeds_paid": 2}, results
    done = orders.get_order(ctx, order.trade_no)
    assert (done.state, done.refunded_fen) == ("partially_refunded", 4000)
    assert balance(ctx, buyer.wallet_account_id) == 10_000 - 990


def test_confirm_racing_close_ends_one_way(client, ctx, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, _ = wallet(ctx)
    fund(ctx, buyer, 100_000)
    for n in range(4):
        order = _order(ctx, shop, buyer, 10 + n)
        _race(lambda o=order: paying.confirm_order(ctx, buyer, o.trade_no, PIN),
              lambda o=order: orders.close_order(ctx, shop.merchant, o.trade_no))
        final = orders.get_order(ctx, order.trade_no)
        paid = ctx.ledger.transfer(order.transfer_id) is not None
        assert (final.state, paid) in {("paid", True), ("closed", False)}


def test_concurrent_confirms_pay_once(client, ctx, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, _ = wallet(ctx)
    fund(ctx, buyer, 10_000)
    order = _order(ctx, shop, buyer, 20)
    results = _race(*[(lambda: paying.confirm_order(ctx, buyer, order.trade_no, PIN))
                      for _ in range(4)])
    assert all(not isinstance(r, str) and r.state == "paid" for r in results), results
    assert balance(ctx, buyer.wallet_account_id) == 10_000 - 4990
