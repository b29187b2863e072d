"""Request and response models of the operators' and approvals' API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from paycell.clock import rfc3339
from paycell.operators.model import Approval, Operator


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OperatorIn(_In):
    name: str = Field(min_length=2, max_length=64, examples=["alice"])
    role: str = Field(examples=["operator"], description="admin, operator or auditor")


class OperatorOut(BaseModel):
    id: int
    name: str
    role: str

    @classmethod
    def of(cls, op: Operator) -> OperatorOut:
        return cls(id=op.id, name=op.name, role=op.role)


class OperatorRow(OperatorOut):
    state: str
    has_key: bool
    created_at: str


class OperatorCreatedOut(BaseModel):
    operator: OperatorOut
    api_key: str | None = Field(description="shown once; null on an idempotent replay")
    api_key_shown: bool


class OperatorList(BaseModel):
    items: list[OperatorRow]


class ProposeIn(_In):
    action: str = Field(min_length=1, max_length=64, examples=["merchant_activate"])
    subject: str = Field(min_length=1, max_length=128, examples=["merchant:7"])
    payload: dict[str, Any] = Field(default_factory=dict)
    reason: str = Field(min_length=1, max_length=500)


class RejectIn(_In):
    note: str = Field(min_length=1, max_length=500)


class ApprovalOut(BaseModel):
    id: int
    action: str
    subject: str
    payload: dict[str, Any]
    reason: str
    state: str
    proposed_by: str
    proposed_at: str
    decided_by: str | None
    decided_at: str | None
    note: str | None
    result: dict[str, Any] | None

    @classmethod
    def of(cls, a: Approval) -> ApprovalOut:
        return cls(id=a.id, action=a.action, subject=a.subject, payload=a.payload,
                   reason=a.reason, state=a.state, proposed_by=a.proposed_by_name,
                   proposed_at=rfc3339(a.proposed_at), decided_by=a.decided_by_name,
                   decided_at=None if a.decided_at is None else rfc3339(a.decided_at),
                   note=a.note, result=a.result)


class ApprovalPage(BaseModel):
    items: list[ApprovalOut]
    next_cursor: str | None
