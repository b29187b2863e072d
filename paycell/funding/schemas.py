"""Request and response models for cards, top-ups and withdrawals. Amounts are integer fen
with ``currency``; times RFC 3339 UTC."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from paycell.clock import rfc3339
from paycell.funding.cards import Card
from paycell.funding.jobs import PendingOperation
from paycell.funding.topups import Topup
from paycell.funding.withdrawals import Withdrawal

MAX_FEN = 10**13  # far above any tier limit; keeps amounts well inside BIGINT
Fen = Field(gt=0, le=MAX_FEN, description="fen (1/100 CNY)")
RecordId = Field(None, min_length=1, max_length=32)


def _t(us: int | None) -> str | None:
    return None if us is None else rfc3339(us)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- cards ---------------------------------------------------------------------------------
class CardIn(_In):
    card_number: str = Field(min_length=12, max_length=30, examples=["6222 0200 0000 0007"],
                             description="13 to 19 digits; spaces and dashes are ignored. "
                             "Passed to the bank and never stored.")


class CardConfirmIn(_In):
    code: str = Field(pattern=r"^\d{4,8}$", description="the code the bank texted",
                      examples=["123456"])


class CardOut(BaseModel):
    id: str
    state: str = Field(description="verifying, active, removed or failed")
    bank: str | None = Field(description="the bank's short code, e.g. icbc")
    bank_name: str | None
    last4: str
    is_default: bool
    reason: str | None = Field(description="why the bank refused it (failed)")
    created_at: str
    verified_at: str | None

    @classmethod
    def of(cls, c: Card) -> CardOut:
        return cls(id=c.id, state=c.state, bank=c.bank, bank_name=c.bank_name, last4=c.last4,
                   is_default=c.is_default, reason=c.reason, created_at=rfc3339(c.created_at),
                   verified_at=_t(c.verified_at))


class CardList(BaseModel):
    items: list[CardOut]


# -- top-ups -------------------------------------------------------------------------------
class TopupIn(_In):
    source: Literal["card", "phone_bill"]
    amount_fen: int = Fen
    currency: Literal["CNY"] = "CNY"
    card_id: str | None = Field(None, min_length=1, max_length=32,
                                description="source card: the card to debit (default: the "
                                "default card); not used for phone_bill")


class TopupOut(BaseModel):
    id: str
    source: str
    card_id: str | None
    msisdn: str | None = Field(description="phone_bill: the number charged")
    partner: str = Field(description="the bank or carrier")
    amount_fen: int
    currency: str
    state: str = Field(description="pending (outcome not known yet), confirmed or failed")
    reason: str | None = Field(description="failed: the partner's reason, e.g. "
                               "insufficient_funds")
    held_in_suspense: bool = Field(description="the partner took the money but the wallet "
                                   "could not receive it: it will be refunded")
    reference: str = Field(description="our reference at the partner")
    created_at: str
    resolved_at: str | None

    @classmethod
    def of(cls, t: Topup) -> TopupOut:
        return cls(id=t.id, source=t.source, card_id=t.card_id, msisdn=t.msisdn,
                   partner=t.partner, amount_fen=t.amount_fen, currency=t.currency,
                   state=t.state, reason=t.reason, held_in_suspense=t.held_in_suspense,
                   reference=t.reference, created_at=rfc3339(t.created_at),
                   resolved_at=_t(t.resolved_at))


class TopupPage(BaseModel):
    items: list[TopupOut]
    next_cursor: str | None
    phone_bill_used_fen: int = Field(description="charged to the phone bill this month")
    phone_bill_cap_fen: int


# -- withdrawals ---------------------------------------------------------------------------
class WithdrawalIn(_In):
    amount_fen: int = Fen
    currency: Literal["CNY"] = "CNY"
    pin: str = Field(pattern=r"^\d{6}$", description="the payment PIN")
    card_id: str | None = Field(None, min_length=1, max_length=32,
                                description="default: the default card")


class WithdrawalOut(BaseModel):
    id: str
    kind: str = Field(description="withdrawal, or close_payout when the wallet was closed")
    card_id: str
    bank: str
    amount_fen: int
    fee_fen: int
    total_fen: int = Field(description="what left the wallet: amount plus fee")
    currency: str
    state: str = Field(description="pending (outcome not known yet), confirmed or failed")
    reason: str | None
    reference: str
    created_at: str
    resolved_at: str | None

    @classmethod
    def of(cls, w: Withdrawal) -> WithdrawalOut:
        return cls(id=w.id, kind=w.kind, card_id=w.card_id, bank=w.bank,
                   amount_fen=w.amount_fen, fee_fen=w.fee_fen,
                   total_fen=w.amount_fen + w.fee_fen, currency=w.currency, state=w.state,
                   reason=w.reason, reference=w.reference, created_at=rfc3339(w.created_at),
                   resolved_at=_t(w.resolved_at))


class WithdrawalPage(BaseModel):
    items: list[WithdrawalOut]
    next_cursor: str | None


class FeeQuoteOut(BaseModel):
    amount_fen: int
    fee_fen: int
    total_fen: int
    currency: str = "CNY"


# -- operators -----------------------------------------------------------------------------
class PendingOut(BaseModel):
    kind: str
    id: str
    reference: str
    subscriber_id: int
    partner: str
    amount_fen: int
    created_at: str
    next_check_at: str | None

    @classmethod
    def of(cls, p: PendingOperation) -> PendingOut:
        return cls(kind=p.kind, id=p.id, reference=p.reference, subscriber_id=p.subscriber_id,
                   partner=p.partner, amount_fen=p.amount_fen,
                   created_at=rfc3339(p.created_at), next_check_at=_t(p.next_check_at))


class PendingList(BaseModel):
    items: list[PendingOut]


class ResolvedOut(BaseModel):
    settled: int
    still_pending: int
