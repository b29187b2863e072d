"""Helpers of the partner tests: two operators (maker and checker), a registered and
approved partner, merchants with sales in the ledger, POS terminals."""

from __future__ import annotations

import itertools
import uuid

from paycell.context import Context
from paycell.ledger import TransferRequest
from paycell.ledger.chart import Code, TransferCode, system_account
from paycell.merchants.model import OnboardedMerchant
from paycell.merchants.service import add_store, create_active_merchant
from paycell.onsite import terminals
from paycell.operators import approvals
from paycell.operators.model import Operator
from paycell.operators.service import ensure_operator
from paycell.partners import service as ps

_n = itertools.count(1)
DAY_S = 86_400


def makers(ctx: Context) -> tuple[Operator, Operator]:
    return (ensure_operator(ctx.engine, ctx.clock, "partner-maker", "operator"),
            ensure_operator(ctx.engine, ctx.clock, "partner-checker", "operator"))


def application(name: str = "East Channel", fee: int = 50_000,
                account: str = "6222000033334444") -> ps.PartnerApplication:
    return ps.PartnerApplication(name=name, contact_phone="+8613900139000",
                                 bank_name="ICBC", bank_account_holder=f"{name} Ltd.",
                                 bank_account_number=account, expansion_fee_fen=fee)


def partner(ctx: Context, name: str | None = None, fee: int = 50_000) -> ps.Partner:
    """A partner registered by one operator and approved by another: active."""
    maker, checker = makers(ctx)
    p, approval = ps.register_partner(ctx, maker, application(name or f"Channel {next(_n)}",
                                                              fee))
    approvals.approve(ctx, checker, approval.id)
    return ps.get_partner(ctx, p.id)


def merchant(ctx: Context, name: str | None = None) -> OnboardedMerchant:
    m = create_active_merchant(ctx, name=name or f"Shop {next(_n)}", category="retail")
    add_store(ctx, m.merchant.id, "S1", "main store", "1 Nanjing Road", "test")
    return m


def sales(ctx: Context, m: OnboardedMerchant, count: int, amount_fen: int = 1_000,
          code: TransferCode = TransferCode.PURCHASE) -> None:
    """``count`` sales credited to the merchant's payable (one ledger call)."""
    source = system_account(ctx.ledger, Code.BANK_CLEARING, "testbank")
    payable = m.merchant.payable_account_id
    assert payable is not None
    reqs = [TransferRequest(f"test:sale:{uuid.uuid4()}", source.id, payable, amount_fen,
                            code=int(code), ref="test sale") for _ in range(count)]
    for r in ctx.ledger.post(reqs):
        r.unwrap()


def terminal(ctx: Context, m: OnboardedMerchant) -> terminals.Terminal:
    """A POS terminal registered to the merchant (its deposit credited first)."""
    source = system_account(ctx.ledger, Code.BANK_CLEARING, "testbank")
    payable = m.merchant.payable_account_id
    assert payable is not None
    ctx.ledger.post_one(TransferRequest(f"test:deposit:{uuid.uuid4()}", source.id, payable,
                                        ctx.settings.terminal_deposit_fen,
                                        code=int(TransferCode.TOPUP_BANK), ref="deposit"))
    return terminals.register_terminal(ctx, m.merchant.code, "S1", "test").terminal


def balance(ctx: Context, account_id: int | None) -> int:
    assert account_id is not None
    return ctx.ledger.account(account_id).balance
