"""Helpers for the settlement tests: sales and refunds posted straight to the ledger at a
chosen moment, rules and deductions through maker-checker."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from paycell.clock import ManualClock
from paycell.context import Context
from paycell.ledger import TransferRequest
from paycell.ledger.chart import Code, TransferCode, system_account
from paycell.merchants.model import Merchant
from paycell.operators import approvals
from paycell.operators.model import Operator
from paycell.settlement import commissions
from paycell.settlement.calendar import CST

_n = itertools.count(1)


def at(clock: ManualClock, day: str, hhmm: str = "10:00") -> None:
    clock.set(datetime.fromisoformat(f"{day}T{hhmm}:00").replace(tzinfo=CST))


def sale(ctx: Context, m: Merchant, amount: int,
         code: TransferCode = TransferCode.PURCHASE) -> str:
    src = system_account(ctx.ledger, Code.BANK_CLEARING, "testbank")
    tid = f"test:sale:{next(_n)}"
    assert m.payable_account_id is not None
    ctx.ledger.post_one(TransferRequest(tid, src.id, m.payable_account_id, amount,
                                        code=int(code), ref="test sale"))
    return tid


def refund(ctx: Context, m: Merchant, amount: int) -> None:
    dst = system_account(ctx.ledger, Code.BANK_CLEARING, "testbank")
    assert m.payable_account_id is not None
    ctx.ledger.post_one(TransferRequest(f"test:refund:{next(_n)}", m.payable_account_id,
                                        dst.id, amount, code=int(TransferCode.REFUND),
                                        ref="test refund"))


def fund_reserve(ctx: Context, amount: int) -> None:
    """The bank confirmed top-ups: money in the custody reserve for payouts."""
    reserve = system_account(ctx.ledger, Code.CUSTODY_RESERVE)
    src = system_account(ctx.ledger, Code.BANK_CLEARING, "testbank")
    ctx.ledger.post_one(TransferRequest(f"test:reserve:{next(_n)}", reserve.id, src.id, amount,
                                        code=int(TransferCode.BANK_CONFIRM), ref="test"))


def set_rule(ctx: Context, maker: Operator, checker: Operator, merchant_id: int, kind: str,
             params: dict[str, Any], effective_from: str = "2026-11-01") -> None:
    a = commissions.propose_rule(ctx, maker, merchant_id=merchant_id,
                                 effective_from=effective_from, kind=kind, params=params,
                                 reason="the contract")
    approvals.approve(ctx, checker, a.id)


def deduct(ctx: Context, maker: Operator, checker: Operator, merchant_id: int, day: str,
           amount: int) -> None:
    a = commissions.propose_deduction(ctx, maker, merchant_id=merchant_id, business_date=day,
                                      amount_fen=amount, reason="terminal rental")
    approvals.approve(ctx, checker, a.id)


def balance(ctx: Context, account_id: int | None) -> int:
    assert account_id is not None
    return ctx.ledger.account(account_id).balance
