"""Request and response models for vouchers, agents and P2P. Amounts are integer fen (with
``currency``); times RFC 3339 UTC."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from paycell.clock import rfc3339
from paycell.funding import cash_rules as rules
from paycell.funding.agents import Agent, AgentTransaction
from paycell.funding.p2p import P2PTransfer
from paycell.funding.vouchers import BatchSummary, GeneratedBatch, Redemption, VoucherBatch
from paycell.ledger import Account

MAX_FEN = 10**15  # far above any limit; keeps amounts inside BIGINT
REFERENCE = rules.REFERENCE
Fen = Field(gt=0, le=MAX_FEN, description="fen (1/100 CNY)")


def _t(us: int | None) -> str | None:
    return None if us is None else rfc3339(us)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- vouchers -------------------------------------------------------------------------------
class VoucherRedeemIn(_In):
    card_number: str = Field(min_length=1, max_length=40, examples=["6212 3456 7890 1234"],
                             description="16 digits; spaces and dashes are ignored")
    secret: str = Field(min_length=1, max_length=40, description="18 digits")


class VoucherRedemptionOut(BaseModel):
    card_number: str
    batch_id: int
    amount_fen: int
    currency: str = "CNY"
    transfer_id: str
    redeemed_at: str

    @classmethod
    def of(cls, r: Redemption) -> VoucherRedemptionOut:
        return cls(card_number=r.card_number, batch_id=r.batch_id, amount_fen=r.amount_fen,
                   transfer_id=r.transfer_id, redeemed_at=rfc3339(r.redeemed_at))


class VoucherBatchIn(_In):
    face_value_fen: int = Fen
    count: int = Field(ge=1, le=1_000_000, description="cards in the batch")
    expires_on: date = Field(description="last day the cards are valid (Beijing date)")


class VoucherBatchOut(BaseModel):
    id: int
    face_value_fen: int
    currency: str = "CNY"
    card_count: int
    expires_on: str
    expires_at: str = Field(description="the first instant the cards are expired")
    state: str = Field(description="active or voided")
    created_at: str
    voided_at: str | None

    @classmethod
    def of(cls, b: VoucherBatch) -> VoucherBatchOut:
        return cls(id=b.id, face_value_fen=b.face_value_fen, card_count=b.card_count,
                   expires_on=b.expires_on, expires_at=rfc3339(b.expires_at), state=b.state,
                   created_at=rfc3339(b.created_at), voided_at=_t(b.voided_at))


class VoucherCardOut(BaseModel):
    card_number: str
    secret: str


class VoucherBatchCreatedOut(BaseModel):
    batch: VoucherBatchOut
    secrets_shown: bool = Field(description="false on a replay: secrets are shown only once")
    cards: list[VoucherCardOut]

    @classmethod
    def of(cls, g: GeneratedBatch) -> VoucherBatchCreatedOut:
        return cls(batch=VoucherBatchOut.of(g.batch), secrets_shown=g.secrets_shown,
                   cards=[VoucherCardOut(card_number=n, secret=s) for n, s in g.cards])


class VoucherBatchSummaryOut(BaseModel):
    batch: VoucherBatchOut
    status: str = Field(description="active, expired or voided: what an unredeemed card is")
    issued_count: int
    issued_fen: int
    redeemed_count: int
    redeemed_fen: int
    unredeemed_count: int
    unredeemed_fen: int

    @classmethod
    def of(cls, s: BatchSummary) -> VoucherBatchSummaryOut:
        b = s.batch
        return cls(batch=VoucherBatchOut.of(b), status=s.status, issued_count=b.card_count,
                   issued_fen=b.card_count * b.face_value_fen, redeemed_count=s.redeemed_count,
                   redeemed_fen=s.redeemed_fen, unredeemed_count=s.unredeemed_count,
                   unredeemed_fen=s.unredeemed_fen)


class VoucherBatchPage(BaseModel):
    items: list[VoucherBatchOut]
    next_cursor: str | None = None


# -- agents ---------------------------------------------------------------------------------
class AgentCreateIn(_In):
    code: str = Field(pattern=rules.AGENT_CODE, examples=["GZ-TH-001"])
    name: str = Field(min_length=1, max_length=100)
    location: str = Field(min_length=1, max_length=200)


class AgentOut(BaseModel):
    id: int
    code: str
    name: str
    location: str
    currency: str
    float_fen: int = Field(description="the float's balance")
    available_fen: int = Field(description="what the agent can still cash in")
    created_at: str

    @classmethod
    def of(cls, a: Agent, acct: Account) -> AgentOut:
        return cls(id=a.id, code=a.code, name=a.name, location=a.location,
                   currency=acct.ledger, float_fen=acct.balance, available_fen=acct.available,
                   created_at=rfc3339(a.created_at))


class AgentCreatedOut(BaseModel):
    agent: AgentOut
    api_key: str | None = Field(description="shown once; null on a replay")
    api_key_shown: bool


class AgentList(BaseModel):
    items: list[AgentOut]
    next_cursor: str | None = None


class FloatTopUpIn(_In):
    amount_fen: int = Fen
    reference: str = Field(pattern=REFERENCE, description="the bank deposit's reference; "
                           "unique per agent")


class CashInIn(_In):
    msisdn: str = Field(min_length=1, max_length=32, examples=["13812345678"])
    amount_fen: int = Fen
    reference: str = Field(pattern=REFERENCE, description="the agent's own reference; "
                           "unique per agent, a repeat returns the first cash-in")


class AgentTransactionOut(BaseModel):
    id: int
    kind: str = Field(description="cash_in or float_topup")
    reference: str
    msisdn: str | None
    amount_fen: int
    currency: str = "CNY"
    transfer_id: str
    created_at: str

    @classmethod
    def of(cls, t: AgentTransaction) -> AgentTransactionOut:
        return cls(id=t.id, kind=t.kind, reference=t.reference, msisdn=t.msisdn,
                   amount_fen=t.amount_fen, transfer_id=t.transfer_id,
                   created_at=rfc3339(t.created_at))


class AgentTransactionPage(BaseModel):
    items: list[AgentTransactionOut]
    next_cursor: str | None = None


# -- P2P ------------------------------------------------------------------------------------
class P2PTransferIn(_In):
    to_msisdn: str = Field(min_length=1, max_length=32, examples=["13912345678"])
    amount_fen: int = Fen
    note: str | None = Field(default=None, max_length=140)
    pin: str = Field(min_length=1, max_length=12, description="the payment PIN")


class P2PTransferOut(BaseModel):
    id: int
    direction: str = Field(description="sent or received, from the caller's side")
    counterparty_msisdn: str
    amount_fen: int
    currency: str = "CNY"
    note: str | None
    state: str = Field(description="completed; pending_claim (the number has no wallet yet), "
                       "then claimed or returned")
    created_at: str
    claim_expires_at: str | None
    resolved_at: str | None

    @classmethod
    def of(cls, t: P2PTransfer, subscriber_id: int) -> P2PTransferOut:
        sent = t.sender_id == subscriber_id
        return cls(id=t.id, direction="sent" if sent else "received",
                   counterparty_msisdn=t.recipient_msisdn if sent else t.sender_msisdn,
                   amount_fen=t.amount_fen, note=t.note, state=t.state,
                   created_at=rfc3339(t.created_at), claim_expires_at=_t(t.expires_at),
                   resolved_at=_t(t.resolved_at))


class P2PTransferPage(BaseModel):
    items: list[P2PTransferOut]
    next_cursor: str | None = None
