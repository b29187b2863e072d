"""Request and response models of the partners' operator API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from paycell.clock import rfc3339
from paycell.operators.schemas import ApprovalOut
from paycell.partners.fees import Fee, FeeRun
from paycell.partners.service import Partner
from paycell.partners.statements import FeeLine, Statement, Totals


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PartnerIn(_In):
    name: str = Field(max_length=100, examples=["East Channel Co."])
    contact_phone: str = Field(max_length=32, examples=["+8613900139000"])
    bank_name: str = Field(max_length=100, examples=["ICBC"])
    bank_account_holder: str = Field(max_length=200)
    bank_account_number: str = Field(max_length=40, examples=["6222000033334444"])
    expansion_fee_fen: StrictInt = Field(
        examples=[50_000], description="per merchant, 20,000 to 200,000 fen (200-2,000 CNY)")
    expansion_days: StrictInt | None = Field(
        None, description="a partner-specific condition: days active (default: settings)")
    expansion_min_txns: StrictInt | None = Field(
        None, description="a partner-specific condition: sales (default: settings)")
    reason: str = Field("new channel partner", max_length=500)


class FeeIn(_In):
    expansion_fee_fen: StrictInt = Field(examples=[80_000])
    reason: str = Field(max_length=500)


class MerchantRefIn(_In):
    merchant_code: str = Field(max_length=20, examples=["M100001"])


class TerminalRefIn(_In):
    terminal_id: str = Field(max_length=12, examples=["T12345678"])


class MonthIn(_In):
    month: str = Field(max_length=10, examples=["2026-11"])


class PartnerOut(BaseModel):
    id: int
    code: str
    name: str
    state: str
    bank_name: str
    bank_account_holder: str
    bank_account_masked: str
    payable_account_id: int | None
    expansion_fee_fen: int
    expansion_days: int | None
    expansion_min_txns: int | None
    currency: str = "CNY"
    created_at: str
    activated_at: str | None

    @classmethod
    def of(cls, p: Partner) -> PartnerOut:
        return cls(id=p.id, code=p.code, name=p.name, state=p.state, bank_name=p.bank_name,
                   bank_account_holder=p.bank_account_holder,
                   bank_account_masked="****" + p.bank_account_last4,
                   payable_account_id=p.payable_account_id,
                   expansion_fee_fen=p.expansion_fee_fen, expansion_days=p.expansion_days,
                   expansion_min_txns=p.expansion_min_txns, created_at=rfc3339(p.created_at),
                   activated_at=None if p.activated_at is None else rfc3339(p.activated_at))


class RegisteredOut(BaseModel):
    partner: PartnerOut
    approval: ApprovalOut


class AttachedOut(BaseModel):
    partner: str
    attached: str
    changed: bool = Field(description="false if it was attached already")


class FeeOut(BaseModel):
    partner_id: int
    kind: str
    amount_fen: int
    business_date: str
    transfer_id: str
    merchant_id: int | None
    month: str | None
    terminals: int | None

    @classmethod
    def of(cls, f: Fee) -> FeeOut:
        return cls(partner_id=f.partner_id, kind=f.kind, amount_fen=f.amount_fen,
                   business_date=f.business_date, transfer_id=f.transfer_id,
                   merchant_id=f.merchant_id, month=f.month, terminals=f.terminals)


class FeeRunOut(BaseModel):
    created: list[FeeOut]
    amount_fen: int
    already_done: int
    currency: str = "CNY"

    @classmethod
    def of(cls, run: FeeRun) -> FeeRunOut:
        return cls(created=[FeeOut.of(f) for f in run.created], amount_fen=run.amount_fen,
                   already_done=run.existing)


class TotalsOut(BaseModel):
    partner: str
    name: str
    merchants: int
    terminals: int
    expansion_fen: int
    maintenance_fen: int
    accrued_fen: int
    paid_out_fen: int
    unpaid_fen: int

    @classmethod
    def of(cls, t: Totals) -> TotalsOut:
        return cls(partner=t.code, name=t.name, merchants=t.merchants, terminals=t.terminals,
                   expansion_fen=t.expansion_fen, maintenance_fen=t.maintenance_fen,
                   accrued_fen=t.accrued_fen, paid_out_fen=t.paid_out_fen,
                   unpaid_fen=t.unpaid_fen)


class SummaryOut(BaseModel):
    month: str
    partners: list[TotalsOut]


class FeeLineOut(BaseModel):
    kind: str
    business_date: str
    amount_fen: int
    transfer_id: str
    paid_out: bool
    merchant_code: str | None
    month: str | None
    terminals: int | None

    @classmethod
    def of(cls, f: FeeLine) -> FeeLineOut:
        return cls(kind=f.kind, business_date=f.business_date, amount_fen=f.amount_fen,
                   transfer_id=f.transfer_id, paid_out=f.paid_out,
                   merchant_code=f.merchant_code, month=f.month, terminals=f.terminals)


class StatementMerchantOut(BaseModel):
    code: str
    name: str
    attached_at: str
    detached_at: str | None
    expansion_fee_paid: bool


class StatementTerminalOut(BaseModel):
    terminal_id: str
    merchant_code: str
    state: str
    attached_at: str
    detached_at: str | None
    counted: bool


class StatementOut(BaseModel):
    month: str
    partner: PartnerOut
    totals: TotalsOut
    merchants: list[StatementMerchantOut]
    terminals: list[StatementTerminalOut]
    fees: list[FeeLineOut]

    @classmethod
    def of(cls, s: Statement) -> StatementOut:
        def t(us: int | None) -> str | None:
            return None if us is None else rfc3339(us)

        return cls(
            month=s.month, partner=PartnerOut.of(s.partner), totals=TotalsOut.of(s.totals),
            merchants=[StatementMerchantOut(
                code=m["code"], name=m["name"], attached_at=rfc3339(m["attached_at"]),
                detached_at=t(m["detached_at"]), expansion_fee_paid=m["expansion_fee_paid"])
                for m in s.merchants],
            terminals=[StatementTerminalOut(
                terminal_id=x["terminal_id"], merchant_code=x["merchant_code"],
                state=x["state"], attached_at=rfc3339(x["attached_at"]),
                detached_at=t(x["detached_at"]), counted=x["counted"]) for x in s.terminals],
            fees=[FeeLineOut.of(f) for f in s.fees])
