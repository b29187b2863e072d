"""The chart of accounts: what each account ``code`` means and which side may not go negative.

Liabilities (what the platform owes: wallets, payables, an agent's prepaid e-float) are
credit-normal and carry ``DEBITS_MUST_NOT_EXCEED_CREDITS``: a wallet never goes below zero
and an agent cannot cash in more than its float. The custody reserve is an asset with a
hard floor (a bank account cannot pay out more than it holds): debit-normal with
``CREDITS_MUST_NOT_EXCEED_DEBITS``.
Clearing, receivable, revenue and expense accounts carry no limit: money in flight may
run either way until it is reconciled.
"""

from __future__ import annotations

from enum import IntEnum

from paycell.ledger.model import AccountFlags
from paycell.ledger.store import Account, Ledger

LIABILITY = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
FLOOR_ASSET = AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
NONE = AccountFlags.NONE


class Code(IntEnum):
    # liabilities: the platform owes these
    WALLET = 100  # a subscriber's stored value, one per wallet
    CARD_ECASH = 110  # offline e-cash purse on an NFC card
    MERCHANT_PAYABLE = 200  # owed to a merchant until settlement
    PARTNER_PAYABLE = 210  # owed to a channel partner
    MERCHANT_DEPOSIT = 220  # terminal deposits held for merchants
    UNCLAIMED = 240  # balances of closed wallets held for collection
    AGENT_FLOAT = 230  # an agent outlet's prepaid e-float, spent on cash-in
    FEE_SHARE_PAYABLE = 250  # card-fee shares owed to card issuers and the card network
    # assets
    CUSTODY_RESERVE = 300  # the reserve bank account backing wallet balances
    BANK_CLEARING = 310  # per bank: money in flight to or from it
    CARRIER_RECEIVABLE = 320  # charged to phone bills, not yet collected
    # income and expense
    REVENUE_COMMISSION = 400
    REVENUE_FEES = 410
    EXPENSE_CHANNEL = 500  # commissions paid to channel partners
    EXPENSE_MARKETING = 510
    EXPENSE_REWARDS = 520  # user rewards (airtime, vouchers)
    SUSPENSE = 900  # unmatched reconciliation items


class TransferCode(IntEnum):
    """What a transfer is for: the ``code`` every transfer carries. One list for the platform."""

    EXPIRY = 0  # the ledger's own voids of expired holds
    TOPUP_BANK = 1001
    TOPUP_CARRIER = 1002
    TOPUP_VOUCHER = 1003
    CASH_IN = 1004
    AGENT_FLOAT = 1005  # an agent buys e-float
    WITHDRAWAL = 1101
    WITHDRAWAL_FEE = 1102
    CLOSE_PAYOUT = 1103  # a closed wallet's balance paid out or held for collection
    PURCHASE = 2001
    COMMISSION = 2002
    REFUND = 2003
    P2P = 3001
    P2P_CLAIMABLE = 3002  # held for an unregistered recipient
    ESCROW_HOLD = 4001
    ESCROW_CONFIRM = 4002
    ESCROW_REFUND = 4003
    BANK_CONFIRM = 5001  # the bank settled clearing into the custody reserve
    POS_PURCHASE = 2101  # an online-authorised tap at a POS terminal
    POS_REFUND = 2102
    ECASH_LOAD = 2201  # wallet -> the card's offline e-cash purse (圈存)
    ECASH_CLEAR = 2202  # an offline transit fare cleared: e-cash purse -> the operator
    ECASH_UNLOAD = 2203
    TERMINAL_DEPOSIT = 2301  # a merchant's POS terminal deposit
    # clearing and settlement (docs/settlement.md)
    CLEARING_COMMISSION = 6001  # a business day's commission: merchant payable -> revenue
    COMMISSION_RETURN = 6002  # commission given back on refunds: revenue -> merchant payable
    DEDUCTION = 6003  # an operator's deduction from a merchant's settlement
    CARD_FEE_SHARE = 6004  # the issuer's and the network's shares of a card-funded fee
    PAYOUT = 6101  # a settlement payout sent to the bank: payable -> bank clearing
    PAYOUT_CONFIRM = 6102  # the bank paid it: bank clearing -> custody reserve
    PAYOUT_RETURN = 6103  # the bank returned it: bank clearing -> payable
    # channel partners (docs/partners.md)
    PARTNER_EXPANSION_FEE = 6201  # merchant-expansion fee: channel expense -> partner payable
    PARTNER_MAINTENANCE = 6202  # POS maintenance fee, per terminal per month
    # reconciliation (docs/reconciliation.md)
    RECON_SUSPENSE = 6301  # a statement difference parked in suspense
    SUSPENSE_RESOLVE = 6302  # an operator's resolution of a suspense item


FLAGS: dict[Code, AccountFlags] = {
    Code.WALLET: LIABILITY,
    Code.CARD_ECASH: LIABILITY,
    Code.MERCHANT_PAYABLE: LIABILITY,
    Code.PARTNER_PAYABLE: LIABILITY,
    Code.MERCHANT_DEPOSIT: LIABILITY,
    Code.AGENT_FLOAT: LIABILITY,
    Code.UNCLAIMED: LIABILITY,
    Code.FEE_SHARE_PAYABLE: LIABILITY,
    Code.CUSTODY_RESERVE: FLOOR_ASSET,
}


def flags_for(code: Code) -> AccountFlags:
    return FLAGS.get(code, NONE)


def open_account(
    ledger: Ledger, name: str, code: Code, *, currency: str = "CNY",
    owner_ref: str | None = None,
) -> Account:
    """Open (or fetch, idempotently by name) an account of the given type."""
    return ledger.create_account(name, ledger=currency, code=int(code), flags=flags_for(code),
                                 owner_ref=owner_ref)


def system_account(ledger: Ledger, code: Code, key: str = "main", currency: str = "CNY") -> Account:
    """The platform's own account of a type, e.g. ``revenue_fees:main:CNY``."""
    return open_account(ledger, f"{code.name.lower()}:{key}:{currency}", code, currency=currency)
