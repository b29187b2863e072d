"""HTTP API of paycell.settlement (mounted under /v1 by paycell.api.app).

Operators (``X-API-Key``), ``/v1/operator/settlement/...``: clear a business date and read
its figures, propose commission rules and deductions (maker-checker: approved with
``POST /v1/approvals/{id}/approve`` by another operator), make a date's payout batch, import
the bank's result file (the CSV as the request body), list and clear payout holds.
Merchants (signed requests), ``/v1/merchant/settlements``: their own cleared days only.
Clearing, batches and result imports are idempotent by their business keys.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from paycell.api import idempotency as idem
from paycell.api.auth import require_operator
from paycell.api.deps import get_context
from paycell.api.errors import problem_responses
from paycell.api.params import MAX_ID, KeyHeader
from paycell.api.rows import row_model
from paycell.context import Context
from paycell.merchants.auth import current_merchant
from paycell.merchants.model import Merchant
from paycell.operators.model import Operator
from paycell.settlement import clearing, commissions, payouts, report
from paycell.settlement.calendar import parse_date
from paycell.settlement.errors import ClearingNotFoundError, SettlementInvalidError
from paycell.settlement.tables import batches as batches_table
from paycell.settlement.tables import clearings as clearings_table
from paycell.settlement.tables import holds as holds_table
from paycell.settlement.tables import payouts as payouts_table

Ctx = Annotated[Context, Depends(get_context)]
OperatorDep = Annotated[Operator, Depends(require_operator)]
MerchantDep = Annotated[Merchant, Depends(current_merchant)]
DatePath = Annotated[str, Path(description="business date YYYY-MM-DD (CST)", max_length=10)]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdField = Annotated[int, Field(ge=1, le=MAX_ID)]

operator_router = APIRouter(prefix="/operator/settlement", tags=["operator: settlement"],
                            responses=problem_responses(401, 403, 404, 409, 422))
merchant_router = APIRouter(prefix="/merchant/settlements", tags=["merchant: settlements"],
                            responses=problem_responses(401, 404, 422))
routers: list[APIRouter] = [operator_router, merchant_router]


def _day(text: str) -> Any:
    try:
        return parse_date(text)
    except ValueError as exc:
        raise SettlementInvalidError(str(exc), field="business_date") from None


class RuleIn(BaseModel):
    merchant_id: IdField
    effective_from: str = Field(max_length=10, examples=["2026-12-01"])
    kind: str = Field(max_length=16, examples=["percentage"])
    params: dict[str, Any] = Field(default_factory=dict, examples=[{"bp": 100}])
    reason: str = Field(max_length=500)


class DeductionIn(BaseModel):
    merchant_id: IdField
    business_date: str = Field(max_length=10)
    amount_fen: int = Field(gt=0, le=10**13, description="fen")
    reason: str = Field(max_length=200)


class NoteIn(BaseModel):
    note: str = Field(max_length=200)


class ProposalOut(BaseModel):
    """A maker-checker proposal: another operator approves it at
    ``POST /v1/approvals/{approval_id}/approve``."""

    approval_id: int
    action: str = Field(examples=["settlement_rule"])
    subject: str
    state: str = Field(examples=["pending"])
    proposed_by: str


class ClearingRunOut(BaseModel):
    """A cleared business date's totals (fen) and its report file's name."""

    business_date: str = Field(examples=["2026-11-25"])
    merchants: int
    cleared_now: int = Field(description="merchants cleared by this call")
    blocked: list[Any] = Field(description="merchants whose payable could not take their "
                                           "commission; retried by the next run")
    gross_fen: int
    refunds_fen: int
    commission_fen: int
    net_fen: int
    currency: str = "CNY"
    report: str


class RuleVersionOut(BaseModel):
    id: int
    merchant_id: int
    effective_from: str
    kind: str
    params: dict[str, Any]
    proposed_by: str
    approved_by: str


class PayoutResultOut(BaseModel):
    """Lines of the bank's result file: newly paid, newly returned, applied before."""

    paid: int
    returned: int
    already: int


# Whole rows, their models derived from the tables (paycell/api/rows.py).
ClearingOut = row_model(clearings_table, "ClearingOut",
                        "A merchant's cleared figures for a business date (fen).")
PayoutOut = row_model(payouts_table, "PayoutOut",
                      "One party's payout in a batch; state sent | paid | returned.")
PayoutBatchOut = row_model(batches_table, "PayoutBatchOut", "A business date's payout batch.",
                     file=(str, ...))
PayoutHoldOut = row_model(holds_table, "PayoutHoldOut",
                    "A party whose payout came back: held until an operator clears it.")


def _approval(a: Any) -> ProposalOut:
    return ProposalOut(approval_id=a.id, action=a.action, subject=a.subject, state=a.state,
                       proposed_by=a.proposed_by_name)


@operator_router.post("/clearings/{business_date}", response_model=ClearingRunOut,
                      summary="Clear a business date")
def clear(business_date: DatePath, ctx: Ctx, operator: OperatorDep) -> dict[str, Any]:
    """Idempotent: a date cleared before answers its figures. ``business_date_open`` (409)
    before its cut-off plus grace."""
    res = clearing.clear_date(ctx, _day(business_date), actor=operator.name)
    path, _ = report.write_report(ctx, res.business_date)
    return {"business_date": res.business_date, "merchants": res.merchants,
            "cleared_now": res.cleared_now, "blocked": res.blocked,
            "gross_fen": res.gross_fen, "refunds_fen": res.refunds_fen,
            "commission_fen": res.commission_fen, "net_fen": res.net_fen,
            "currency": "CNY", "report": path.name}


@operator_router.get("/clearings", response_model=list[ClearingOut],  # type: ignore[valid-type]
                     summary="Cleared figures per merchant and date")
def list_clearings(ctx: Ctx, _: OperatorDep, business_date: str | None = Query(None),
                   merchant_id: int | None = Query(None, ge=1, le=MAX_ID),
                   limit: int = Query(200, ge=1, le=1000)) -> list[dict[str, Any]]:
    if business_date:
        _day(business_date)
    return clearing.clearings_of(ctx, business_date=business_date, merchant_id=merchant_id,
                                 limit=limit)


@operator_router.post("/rules", status_code=202, response_model=ProposalOut,
                      summary="Propose a commission rule")
async def propose_rule(request: Request, body: RuleIn, ctx: Ctx, operator: OperatorDep,
                       idempotency_key: KeyHeader = None) -> Response:
    """A second operator approves it (``POST /v1/approvals/{id}/approve``)."""
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, f"operator:{operator.id}", idempotency_key, body,
        lambda: _approval(commissions.propose_rule(
            ctx, operator, merchant_id=body.merchant_id, effective_from=body.effective_from,
            kind=body.kind, params=body.params, reason=body.reason)), status_code=202)


@operator_router.get("/rules/{merchant_id}", response_model=list[RuleVersionOut],
                     summary="A merchant's rule versions")
def rules_of(merchant_id: IdPath, ctx: Ctx, _: OperatorDep) -> list[dict[str, Any]]:
    return [v.out() for v in commissions.rule_history(ctx, merchant_id)]


@operator_router.post("/deductions", status_code=202, response_model=ProposalOut,
                      summary="Propose a deduction")
async def propose_deduction(request: Request, body: DeductionIn, ctx: Ctx,
                            operator: OperatorDep, idempotency_key: KeyHeader = None
                            ) -> Response:
    """A second operator approves it; refused once the date is cleared."""
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, f"operator:{operator.id}", idempotency_key, body,
        lambda: _approval(commissions.propose_deduction(
            ctx, operator, merchant_id=body.merchant_id, business_date=body.business_date,
            amount_fen=body.amount_fen, reason=body.reason)), status_code=202)


@operator_router.post("/payouts/{business_date}", response_model=PayoutBatchOut,
                      summary="Make a date's payout batch")
def payout_batch(business_date: DatePath, ctx: Ctx, operator: OperatorDep) -> dict[str, Any]:
    b = payouts.run_batch(ctx, _day(business_date), actor=operator.name)
    b["file"] = FsPath(b["file"]).name
    return b


@operator_router.get("/payouts", response_model=list[PayoutOut],  # type: ignore[valid-type]
                     summary="Payouts, newest first")
def list_payouts(ctx: Ctx, _: OperatorDep, business_date: str | None = Query(None),
                 party_kind: str | None = Query(None, pattern="^(merchant|partner)$"),
                 party_id: int | None = Query(None, ge=1, le=MAX_ID),
                 limit: int = Query(200, ge=1, le=1000)) -> list[dict[str, Any]]:
    return payouts.list_payouts(ctx, business_date=business_date, party_kind=party_kind,
                                party_id=party_id, limit=limit)


@operator_router.post("/payout-results", response_model=PayoutResultOut,
                      summary="Import the bank's result file",
                      openapi_extra={"requestBody": {"content": {"text/csv": {}}}})
async def payout_result(request: Request, ctx: Ctx, _: OperatorDep) -> dict[str, int]:
    """The body is the result file (text/csv), streamed to a temporary file."""
    fd, name = tempfile.mkstemp(suffix=".csv")
    try:
        with os.fdopen(fd, "wb") as fh:
            async for chunk in request.stream():
                fh.write(chunk)
        out: dict[str, int] = await run_in_threadpool(payouts.import_result, ctx,
                                                      FsPath(name))
        return out
    finally:
        os.unlink(name)


@operator_router.get("/holds", response_model=list[PayoutHoldOut],  # type: ignore[valid-type]
                     summary="Parties on payout hold")
def list_holds(ctx: Ctx, _: OperatorDep,
               state: str = Query("open", pattern="^(open|cleared)$")) -> list[dict[str, Any]]:
    return payouts.list_holds(ctx, state=state)


@operator_router.post("/holds/{hold_id}/clear", response_model=PayoutHoldOut,
                      summary="Clear a payout hold")
async def clear_hold(request: Request, hold_id: IdPath, body: NoteIn, ctx: Ctx,
                     operator: OperatorDep, idempotency_key: KeyHeader = None) -> Response:
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, f"operator:{operator.id}", idempotency_key, body,
        lambda: payouts.clear_hold(ctx, operator, hold_id, body.note))


class SettlementDayOut(BaseModel):
    """One cleared business day of a merchant, as the merchant sees it (fen)."""

    business_date: str = Field(examples=["2026-11-25"])
    sales_count: int
    gross_fen: int = Field(description="sales of the day")
    refund_count: int
    refunds_fen: int
    commission_fen: int = Field(description="the platform's commission on the sales")
    commission_returned_fen: int = Field(description="commission given back on refunds")
    deductions_fen: int
    net_fen: int = Field(description="what the day adds to the next payout")
    rule_kind: str | None = Field(description="the commission rule in force that day")
    currency: str = "CNY"

    @classmethod
    def of(cls, row: dict[str, Any]) -> SettlementDayOut:
        return cls(**{k: row[k] for k in cls.model_fields if k != "currency"})


@merchant_router.get("", response_model=list[SettlementDayOut],
                     summary="My cleared business days, newest first")
def my_settlements(ctx: Ctx, merchant: MerchantDep,
                   limit: int = Query(31, ge=1, le=366)) -> list[SettlementDayOut]:
    return [SettlementDayOut.of(r)
            for r in clearing.clearings_of(ctx, merchant_id=merchant.id, limit=limit)]


@merchant_router.get("/{business_date}", response_model=SettlementDayOut,
                     summary="One cleared day")
def my_settlement(business_date: DatePath, ctx: Ctx, merchant: MerchantDep
                  ) -> SettlementDayOut:
    rows = clearing.clearings_of(ctx, merchant_id=merchant.id,
                                 business_date=_day(business_date).isoformat())
    if not rows:
        raise ClearingNotFoundError(f"{business_date} is not cleared for you (yet)")
    return SettlementDayOut.of(rows[0])
