"""The card-fee split: the merchant fee on card-funded orders shared issuer/acquirer/network."""

from __future__ import annotations

from datetime import date

from cash_helpers import wallet  # type: ignore[import-not-found]
from settle_helpers import at, set_rule
from sqlalchemy import insert

from paycell.clock import ManualClock
from paycell.context import Context
from paycell.funding.tables import topups
from paycell.ledger import TransferRequest
from paycell.ledger.chart import Code, TransferCode, system_account
from paycell.merchants.model import Merchant
from paycell.merchants.service import create_active_merchant
from paycell.operators.model import Operator
from paycell.payments.tables import payment_orders
from paycell.settlement import clearing


def _order(ctx: Context, m: Merchant, n: int, amount: int, via: str, bank: str) -> None:
    sub, _ = wallet(ctx)
    now = ctx.clock.now_us()
    trade_no = f"P{n:020x}"
    with ctx.engine.begin() as conn:
        conn.execute(insert(topups).values(
            id=f"T{n}", subscriber_id=sub.id, source="card", card_id=None, partner=bank,
            amount_fen=amount, currency="CNY", state="confirmed", created_at=now,
            updated_at=now))
        conn.execute(insert(payment_orders).values(
            trade_no=trade_no, merchant_id=m.id, out_trade_no=f"o{n}", request_json="{}",
            kind="direct", amount_fen=amount, currency="CNY", subject="s",
            payer_subscriber_id=sub.id, payer_msisdn=sub.msisdn, state="paid",
            paid_via=via, funding_ref=f"T{n}", expires_at=now + 1, paid_at=now,
            created_at=now, updated_at=now))
    src = system_account(ctx.ledger, Code.BANK_CLEARING, "testbank")
    assert m.payable_account_id is not None
    ctx.ledger.post_one(TransferRequest(f"pay:{trade_no}", src.id, m.payable_account_id,
                                        amount, code=int(TransferCode.PURCHASE)))


def test_card_funded_fee_is_split_70_20_10(ctx: Context, clock: ManualClock,
                                           maker: Operator, checker: Operator) -> None:
    m = create_active_merchant(ctx, name="Card Cafe", category="food_beverage").merchant
    at(clock, "2026-11-24")
    set_rule(ctx, maker, checker, m.id, "percentage", {"bp": 200})
    at(clock, "2026-11-25")
    _order(ctx, m, 1, 50_000, "card", "ccb")  # fee 1,000 on the card part
    _order(ctx, m, 2, 25_000, "card", "abc")  # fee 500
    _order(ctx, m, 3, 25_000, "wallet", "x")  # fee 500, no card share
    at(clock, "2026-11-26", "01:00")
    clearing.clear_date(ctx, date(2026, 11, 25))
    row = clearing.clearings_of(ctx, business_date="2026-11-25")[0]
    assert (row["commission_fen"], row["card_fee_fen"]) == (2_000, 1_500)
    issuer_ccb = system_account(ctx.ledger, Code.FEE_SHARE_PAYABLE, "issuer:ccb")
    issuer_abc = system_account(ctx.ledger, Code.FEE_SHARE_PAYABLE, "issuer:abc")
    network = system_account(ctx.ledger, Code.FEE_SHARE_PAYABLE, "network:unionpay")
    revenue = system_account(ctx.ledger, Code.REVENUE_COMMISSION)
    assert (issuer_ccb.balance, issuer_abc.balance, network.balance) == (700, 350, 150)
    assert revenue.balance == 2_000 - 700 - 350 - 150  # the acquirer's 20 % and the rest
