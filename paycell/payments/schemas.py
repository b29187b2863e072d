"""Request and response models of payment orders. Amounts are integer fen with
``currency``; times RFC 3339 UTC."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from paycell.clock import rfc3339
from paycell.merchants.model import Merchant
from paycell.payments.escrow import Dispute
from paycell.payments.orders import Order
from paycell.payments.refunds import Refund
from paycell.subscribers.service import mask_msisdn

MAX_FEN = 10**13
Ref = Field(pattern=r"^[A-Za-z0-9_\-.:]{1,64}$")


def _t(us: int | None) -> str | None:
    return None if us is None else rfc3339(us)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PaymentCreateIn(_In):
    out_trade_no: str = Field(pattern=r"^[A-Za-z0-9_\-.:]{1,64}$",
                              description="your own order number, unique among your orders; "
                              "sending it again with the same request answers the same order",
                              examples=["BOOK-2026-0001"])
    amount_fen: int = Field(gt=0, le=MAX_FEN, description="fen (1/100 CNY)", examples=[4990])
    currency: Literal["CNY"] = "CNY"
    subject: str = Field(min_length=1, max_length=128, examples=["Two paperbacks"])
    payer_msisdn: str = Field(min_length=5, max_length=20, examples=["+8613800138000"],
                              description="the wallet asked to pay")
    kind: Literal["direct", "escrow"] = Field(
        "direct", description="escrow (担保支付): held until the buyer confirms receipt")
    notify_url: str | None = Field(None, max_length=512,
                                   description="where result notifications are POSTed "
                                   "(default: your merchant's notify URL)")
    return_url: str | None = Field(None, max_length=512)
    expires_in_s: int | None = Field(None, ge=60, le=7 * 86_400,
                                     description="default 900 (15 minutes)")
    store_id: int | None = None


class RefundIn(_In):
    out_request_no: str = Field(pattern=r"^[A-Za-z0-9_\-.:]{1,64}$",
                                description="your refund number: one per refund, idempotent")
    amount_fen: int = Field(gt=0, le=MAX_FEN)
    reason: str | None = Field(None, max_length=200)


class ConfirmIn(_In):
    pin: str = Field(min_length=4, max_length=12, description="the payment PIN")
    source: Literal["wallet", "card", "phone_bill"] = "wallet"
    card_id: str | None = Field(None, max_length=32, description="default card if omitted")


class PinIn(_In):
    pin: str = Field(min_length=4, max_length=12)


class DisputeIn(_In):
    reason: str = Field(min_length=5, max_length=500)


class ResolutionIn(_In):
    outcome: Literal["refund", "release", "split"]
    buyer_fen: int | None = Field(None, ge=0, le=MAX_FEN,
                                  description="split only: how much goes back to the buyer")
    note: str | None = Field(None, max_length=200)


class OrderOut(BaseModel):
    trade_no: str
    out_trade_no: str
    merchant_id: int
    merchant_code: str
    merchant_name: str
    kind: str
    state: str = Field(description="waiting, paid, held, released, disputed, closed, "
                       "partially_refunded or refunded")
    amount_fen: int
    currency: str
    refunded_fen: int
    refundable_fen: int
    subject: str
    payer: str = Field(description="the payer's number, masked")
    paid_via: str | None
    funding_pending: bool = Field(description="a card or phone-bill charge is in flight")
    return_url: str | None
    created_at: str
    expires_at: str
    paid_at: str | None
    release_at: str | None
    released_at: str | None
    closed_at: str | None

    @classmethod
    def of(cls, o: Order, m: Merchant) -> OrderOut:
        return cls(trade_no=o.trade_no, out_trade_no=o.out_trade_no, merchant_id=o.merchant_id,
                   merchant_code=m.code, merchant_name=m.name,
                   kind=o.kind, state=o.state, amount_fen=o.amount_fen, currency=o.currency,
                   refunded_fen=o.refunded_fen, refundable_fen=o.refundable_fen,
                   subject=o.subject, payer=mask_msisdn(o.payer_msisdn), paid_via=o.paid_via,
                   funding_pending=o.funding_ref is not None and o.state == "waiting",
                   return_url=o.return_url, created_at=rfc3339(o.created_at),
                   expires_at=rfc3339(o.expires_at), paid_at=_t(o.paid_at),
                   release_at=_t(o.release_at), released_at=_t(o.released_at),
                   closed_at=_t(o.closed_at))


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None


class RefundOut(BaseModel):
    refund_no: str
    out_request_no: str
    amount_fen: int
    reason: str | None
    source: str
    created_at: str

    @classmethod
    def of(cls, r: Refund) -> RefundOut:
        return cls(refund_no=r.refund_no, out_request_no=r.out_request_no,
                   amount_fen=r.amount_fen, reason=r.reason, source=r.source,
                   created_at=rfc3339(r.created_at))


class RefundResultOut(BaseModel):
    refund: RefundOut
    order: OrderOut


class RefundList(BaseModel):
    items: list[RefundOut]


class EventOut(BaseModel):
    from_state: str | None
    to_state: str
    actor: str
    note: str | None
    at: str

    @classmethod
    def of(cls, e: Any) -> EventOut:
        return cls(from_state=e.from_state, to_state=e.to_state, actor=e.actor, note=e.note,
                   at=rfc3339(e.at))


class OrderDetailOut(BaseModel):
    order: OrderOut
    events: list[EventOut]
    refunds: list[RefundOut]


class DisputeOut(BaseModel):
    id: int
    trade_no: str
    reason: str
    state: str
    outcome: str | None
    buyer_fen: int | None
    merchant_fen: int | None
    decided_by: str | None
    approved_by: str | None
    created_at: str
    resolved_at: str | None

    @classmethod
    def of(cls, d: Dispute, trade_no: str) -> DisputeOut:
        return cls(id=d.id, trade_no=trade_no, reason=d.reason, state=d.state,
                   outcome=d.outcome, buyer_fen=d.buyer_fen, merchant_fen=d.merchant_fen,
                   decided_by=d.decided_by, approved_by=d.approved_by,
                   created_at=rfc3339(d.created_at), resolved_at=_t(d.resolved_at))


class DisputeList(BaseModel):
    items: list[DisputeOut]
