"""Response models of the ledger's operator API. Amounts are integer fen; times RFC 3339 UTC."""

from __future__ import annotations

from enum import IntFlag

from pydantic import BaseModel, Field

from paycell.clock import rfc3339
from paycell.ledger.audit import AuditReport
from paycell.ledger.chart import Code
from paycell.ledger.model import AccountFlags, HoldState, Transfer, TransferFlags
from paycell.ledger.store import Account


def flag_names(flags: int, kind: type[IntFlag]) -> list[str]:
    """The names of the bits set in ``flags``, lower case, in bit order."""
    return [f.name.lower() for f in kind if f.value and f.name and flags & f.value]


def code_name(code: int) -> str | None:
    try:
        return Code(code).name.lower()
    except ValueError:
        return None


class AccountOut(BaseModel):
    id: int
    name: str
    currency: str
    code: int
    code_name: str | None = Field(description="the chart of accounts' name for code")
    owner_ref: str | None
    flags: list[str]
    closed: bool
    debits_pending: int = Field(description="fen")
    debits_posted: int = Field(description="fen")
    credits_pending: int = Field(description="fen")
    credits_posted: int = Field(description="fen")
    balance_fen: int = Field(description="posted balance on the account's normal side")
    available_fen: int = Field(description="posted balance less outgoing holds")
    created_at: str

    @classmethod
    def of(cls, a: Account) -> AccountOut:
        return cls(
            id=a.id, name=a.name, currency=a.ledger, code=a.code, code_name=code_name(a.code),
            owner_ref=a.owner_ref, flags=flag_names(a.flags, AccountFlags), closed=a.closed,
            debits_pending=a.debits_pending, debits_posted=a.debits_posted,
            credits_pending=a.credits_pending, credits_posted=a.credits_posted,
            balance_fen=a.balance, available_fen=a.available, created_at=rfc3339(a.timestamp),
        )


class AccountList(BaseModel):
    items: list[AccountOut]
    next_cursor: str | None = None


class TransferOut(BaseModel):
    id: str
    seq: int = Field(description="position in the journal")
    debit_account_id: int
    credit_account_id: int
    amount_fen: int
    currency: str
    code: int
    flags: list[str]
    pending_id: str | None
    timeout_s: int
    ref: str | None
    created_at: str
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, t: Transfer) -> TransferOut:
        return cls(
            id=t.id, seq=t.seq, debit_account_id=t.debit_account_id,
            credit_account_id=t.credit_account_id, amount_fen=t.amount, currency=t.ledger,
            code=t.code, flags=flag_names(t.flags, TransferFlags), pending_id=t.pending_id,
            timeout_s=t.timeout, ref=t.ref, created_at=rfc3339(t.timestamp),
            prev_hash=t.prev_hash, hash=t.hash,
        )


class TransferPage(BaseModel):
    items: list[TransferOut]
    next_cursor: str | None = Field(description="pass as cursor for the next page; "
                                                "null on the last page")


class HoldOut(BaseModel):
    transfer_id: str
    debit_account_id: int
    credit_account_id: int
    amount_fen: int
    currency: str
    status: str = Field(description="pending, posted, voided or expired")
    expires_at: str | None
    resolved_by: str | None = Field(description="id of the transfer that posted or voided it")

    @classmethod
    def of(cls, h: HoldState) -> HoldOut:
        return cls(
            transfer_id=h.transfer_id, debit_account_id=h.debit_account_id,
            credit_account_id=h.credit_account_id, amount_fen=h.amount, currency=h.ledger,
            status=h.status, expires_at=None if h.expires_at is None else rfc3339(h.expires_at),
            resolved_by=h.resolved_by,
        )


class AuditCheckOut(BaseModel):
    name: str
    ok: bool
    detail: str
    problems: list[str]


class AuditReportOut(BaseModel):
    ok: bool
    accounts: int
    transfers: int
    checks: list[AuditCheckOut]

    @classmethod
    def of(cls, r: AuditReport) -> AuditReportOut:
        return cls(ok=r.ok, accounts=r.accounts, transfers=r.transfers,
                   checks=[AuditCheckOut(name=c.name, ok=c.ok, detail=c.detail,
                                         problems=list(c.problems)) for c in r.checks])


class BalanceSnapshotOut(BaseModel):
    code: int
    code_name: str | None
    currency: str
    accounts: int = Field(description="how many accounts of this type exist")
    total_fen: int = Field(description="the sum of their posted balances, in one snapshot")
    negative: int = Field(description="how many have a negative posted balance")
    min_balance_fen: int | None
    balances: dict[str, int] = Field(
        description="account id -> posted balance (fen), when `with_accounts` is set")
