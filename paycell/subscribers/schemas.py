"""Request and response bodies of the wallet and operator subscriber endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from paycell.clock import rfc3339
from paycell.subscribers.service import Subscriber
from paycell.subscribers.statement import Balance, Line
from paycell.subscribers.tokens import TokenPair

Msisdn = Field(min_length=1, max_length=32, examples=["+8613800138000"])
Pin = Field(min_length=1, max_length=16, examples=["730419"], description="six digits")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignupIn(Body):
    msisdn: str = Msisdn
    pin: str = Pin
    name: str | None = Field(None, max_length=200, description="with id_number: tier 1")
    id_number: str | None = Field(None, max_length=40, description="ID-document number")


class LoginIn(Body):
    msisdn: str = Msisdn
    pin: str = Pin


class RefreshIn(Body):
    refresh_token: str = Field(min_length=1, max_length=200)


class PinChangeIn(Body):
    old_pin: str = Pin
    new_pin: str = Pin


class PinResetIn(Body):
    msisdn: str = Msisdn


class PinResetConfirmIn(Body):
    msisdn: str = Msisdn
    code: str = Field(min_length=1, max_length=16, description="the six digits texted")
    new_pin: str = Pin


class KycIn(Body):
    name: str = Field(min_length=1, max_length=200)
    id_number: str = Field(min_length=1, max_length=40)


class CloseIn(Body):
    pin: str = Pin


class ReasonIn(Body):
    reason: str = Field(min_length=1, max_length=500, description="kept in the audit log")


class Done(BaseModel):
    status: str = Field(examples=["ok"])
    detail: str | None = None


class SubscriberOut(BaseModel):
    id: int
    msisdn: str
    state: Literal["active", "frozen", "closed"]
    tier: int
    name: str | None
    created_at: str

    @classmethod
    def of(cls, s: Subscriber) -> SubscriberOut:
        return cls(id=s.id, msisdn=s.msisdn, state=s.state,  # type: ignore[arg-type]
                   tier=s.tier, name=s.name, created_at=rfc3339(s.created_at))


class TokensOut(BaseModel):
    token_type: Literal["Bearer"] = "Bearer"
    access_token: str
    refresh_token: str
    expires_in: int = Field(description="seconds the access token lives")
    access_expires_at: str
    refresh_expires_at: str
    subscriber_id: int

    @classmethod
    def of(cls, p: TokenPair, now_us: int) -> TokensOut:
        return cls(access_token=p.access_token, refresh_token=p.refresh_token,
                   expires_in=(p.access_expires_at - now_us) // 1_000_000,
                   access_expires_at=rfc3339(p.access_expires_at),
                   refresh_expires_at=rfc3339(p.refresh_expires_at),
                   subscriber_id=p.subscriber_id)


class LimitsOut(BaseModel):
    balance_cap_fen: int
    per_transaction_fen: int
    daily_fen: int
    monthly_fen: int


class RemainingOut(BaseModel):
    daily_fen: int = Field(description="outflow still allowed today (CST)")
    monthly_fen: int = Field(description="outflow still allowed this month (CST)")
    balance_headroom_fen: int = Field(description="how much more the wallet may receive")


class BalanceOut(BaseModel):
    currency: str = "CNY"
    balance_fen: int = Field(description="posted balance")
    available_fen: int = Field(description="balance less holds out: what can be spent")
    pending_fen: int = Field(description="held for payments not yet settled (holds out)")
    incoming_pending_fen: int = Field(description="holds in, not yet credited")
    tier: int
    tier_name: str
    limits: LimitsOut
    remaining: RemainingOut

    @classmethod
    def of(cls, b: Balance) -> BalanceOut:
        t = b.tier
        return cls(balance_fen=b.balance_fen, available_fen=b.available_fen,
                   pending_fen=b.pending_fen, incoming_pending_fen=b.incoming_pending_fen,
                   tier=t.tier, tier_name=t.name,
                   limits=LimitsOut(balance_cap_fen=t.balance_cap_fen,
                                    per_transaction_fen=t.per_transaction_fen,
                                    daily_fen=t.daily_fen, monthly_fen=t.monthly_fen),
                   remaining=RemainingOut(
                       daily_fen=max(0, min(t.daily_fen - b.daily_used_fen,
                                            t.monthly_fen - b.monthly_used_fen)),
                       monthly_fen=max(0, t.monthly_fen - b.monthly_used_fen),
                       balance_headroom_fen=b.balance_headroom_fen))


class StatementLineOut(BaseModel):
    id: str = Field(description="the ledger transfer id")
    type: str = Field(examples=["topup_bank", "p2p", "purchase", "withdrawal"])
    amount_fen: int = Field(description="signed: + into the wallet, - out of it")
    currency: str = "CNY"
    status: Literal["posted", "pending", "voided", "expired"]
    settled_fen: int | None = Field(None, description="a posted hold: the amount settled")
    counterparty_type: str = Field(examples=["bank", "merchant", "wallet", "agent"])
    counterparty: str | None = Field(None, description="another wallet's masked MSISDN")
    description: str | None
    created_at: str

    @classmethod
    def of(cls, x: Line) -> StatementLineOut:
        return cls(id=x.id, type=x.type, amount_fen=x.amount_fen,
                   status=x.status,  # type: ignore[arg-type]
                   settled_fen=x.settled_fen, counterparty_type=x.counterparty_type,
                   counterparty=x.counterparty, description=x.description,
                   created_at=rfc3339(x.created_at))


class StatementPage(BaseModel):
    items: list[StatementLineOut]
    next_cursor: str | None


class EventOut(BaseModel):
    kind: str
    actor: str
    reason: str | None
    created_at: str


class SubscriberAdminOut(SubscriberOut):
    wallet_account_id: int
    balance_fen: int
    id_number_last4: str | None
    pin_locked_until: str | None
    closed_at: str | None
    events: list[EventOut] = Field(default_factory=list, description="newest first")


class SubscriberList(BaseModel):
    items: list[SubscriberAdminOut]
