"""Shared by the POS terminal tests: a merchant with a store and money in its payable, a
registered terminal, a wallet with an active NFC card and its simulated applet, and a POS
simulator speaking the terminal API through the test client."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass

from cash_helpers import fund, wallet  # type: ignore[import-not-found]
from fastapi.testclient import TestClient

from paycell.context import Context
from paycell.ledger import TransferRequest
from paycell.ledger.chart import Code, TransferCode, system_account
from paycell.merchants.model import OnboardedMerchant
from paycell.merchants.service import add_store, create_active_merchant
from paycell.onsite import cards, terminals
from paycell.onsite.card_sim import CardSim
from paycell.onsite.keystore import KeyStore
from paycell.onsite.pos_sim import PosSim
from paycell.subscribers.service import Subscriber

_n = itertools.count(1)
PIN = "730419"


def credit_payable(ctx: Context, account_id: int, amount_fen: int) -> None:
    """Money in a merchant's payable from a test bank (as if earlier sales)."""
    source = system_account(ctx.ledger, Code.BANK_CLEARING, "testbank")
    ctx.ledger.post_one(TransferRequest(f"test:payable:{uuid.uuid4()}", source.id, account_id,
                                        amount_fen, code=TransferCode.TOPUP_BANK,
                                        ref="test payable"))


def shop(ctx: Context, name: str = "Corner Shop", payable_fen: int = 200_000,
         stores: tuple[str, ...] = ("S1",)) -> OnboardedMerchant:
    m = create_active_merchant(ctx, name=name, category="retail")
    for code in stores:
        add_store(ctx, m.merchant.id, code, f"{name} {code}", "1 Nanjing Road", "test")
    if payable_fen:
        assert m.merchant.payable_account_id is not None
        credit_payable(ctx, m.merchant.payable_account_id, payable_fen)
    return m


@dataclass
class Holder:
    sub: Subscriber
    card: cards.Card
    sim: CardSim


def iccid() -> str:
    body = f"8986{next(_n) + 10**10:014d}"
    return body + cards.luhn_digit(body)


def card_holder(ctx: Context, balance_fen: int = 100_000, **kw: object) -> Holder:
    sub, _ = wallet(ctx, pin=PIN, **kw)
    if balance_fen:
        fund(ctx, sub, balance_fen)
    card = cards.issue_card(ctx, sub, iccid())
    card = cards.activate(ctx, card.id)
    sim = CardSim.personalised(KeyStore(ctx.settings), card.pan, card.psn)
    return Holder(sub, card, sim)


def terminal(ctx: Context, m: OnboardedMerchant, store: str = "S1") -> terminals.Registered:
    return terminals.register_terminal(ctx, m.merchant.code, store, "test")


def pos(client: TestClient, ctx: Context, m: OnboardedMerchant, store: str = "S1",
        reg: terminals.Registered | None = None, sign_on: bool = True) -> PosSim:
    reg = reg or terminal(ctx, m, store)
    p = PosSim(client, reg.terminal.terminal_id, reg.key_hex, m.merchant.code, store,
               clock=ctx.clock)
    if sign_on:
        p.sign_on()
    return p


def balance(ctx: Context, account_id: int) -> int:
    return ctx.ledger.account(account_id).balance
