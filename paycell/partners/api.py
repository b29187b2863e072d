"""Operators' partner routes (``/v1/operator/partners``, ``X-API-Key``): register (a second
operator approves under ``/v1/approvals``), list, show, propose an expansion fee change,
attach and detach merchants and POS terminals, accrue a month's maintenance, run the
expansion check, monthly statements. POSTs take an Idempotency-Key. docs/partners.md."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from paycell.api import idempotency as idem
from paycell.api.auth import require_operator
from paycell.api.deps import get_context
from paycell.api.errors import problem_responses
from paycell.api.params import KeyHeader
from paycell.context import Context
from paycell.crypto import token_hash
from paycell.operators.model import Operator
from paycell.operators.schemas import ApprovalOut
from paycell.operators.service import require_role
from paycell.partners import fees
from paycell.partners import schemas as sch
from paycell.partners import service as svc
from paycell.partners import statements as st

CtxDep = Annotated[Context, Depends(get_context)]
OperatorDep = Annotated[Operator, Depends(require_operator)]
Code = Annotated[str, Path(max_length=16, examples=["P10001"])]
Month = Annotated[str, Path(max_length=10, examples=["2026-11"])]

router = APIRouter(prefix="/operator/partners", tags=["partners"],
                   dependencies=[Depends(require_operator)],
                   responses=problem_responses(401, 403, 404, 409, 422))


def _caller(op: Operator) -> str:
    return f"operator:{op.id}"


@router.post("", response_model=sch.RegisteredOut, status_code=201,
             summary="Register a channel partner")
async def register(request: Request, body: sch.PartnerIn, ctx: CtxDep, op: OperatorDep,
                   idempotency_key: KeyHeader = None) -> Response:
    """State ``pending`` with a proposed activation: another operator approves it with
    ``POST /v1/approvals/{id}/approve``. 422 ``partner_invalid`` (``field``)."""
    idem.check_key(idempotency_key)
    require_role(op)
    fingerprint = body.model_dump(exclude={"bank_account_number"}) | {
        "bank_account_number": token_hash(ctx.settings.secret_key,
                                          f"bank:{body.bank_account_number}")}

    def run() -> sch.RegisteredOut:
        fields = body.model_dump(exclude={"reason"})
        p, a = svc.register_partner(ctx, op, svc.PartnerApplication(**fields), body.reason)
        return sch.RegisteredOut(partner=sch.PartnerOut.of(p), approval=ApprovalOut.of(a))

    return await idem.idempotent(request, ctx.engine, ctx.clock, _caller(op), idempotency_key,
                                 fingerprint, run, status_code=201)


@router.get("", response_model=list[sch.PartnerOut], summary="Partners, newest first")
def list_partners(ctx: CtxDep, state: Annotated[str | None, Query(max_length=10)] = None
                  ) -> list[sch.PartnerOut]:
    return [sch.PartnerOut.of(p) for p in svc.list_partners(ctx, state=state, limit=500)]


@router.get("/statements/{month}", response_model=sch.SummaryOut,
            summary="Every partner's figures for a month")
def summary(ctx: CtxDep, month: Month) -> sch.SummaryOut:
    """422 ``month_invalid``."""
    rows = st.month_summary(ctx, month)
    return sch.SummaryOut(month=month, partners=[sch.TotalsOut.of(t) for t in rows])


@router.get("/{code}", response_model=sch.PartnerOut, summary="A partner")
def get_partner(ctx: CtxDep, code: Code) -> sch.PartnerOut:
    """404 ``partner_not_found``."""
    return sch.PartnerOut.of(svc.find_partner(ctx, code))


@router.get("/{code}/statements/{month}", response_model=sch.StatementOut,
            summary="A partner's monthly statement")
def statement(ctx: CtxDep, code: Code, month: Month) -> sch.StatementOut:
    """Merchants, terminals (counted or not), fees and whether a payout has taken each.
    404 ``partner_not_found``, 422 ``month_invalid``."""
    p = svc.find_partner(ctx, code)
    return sch.StatementOut.of(st.partner_statement(ctx, p.id, month))


@router.post("/{code}/fee", response_model=ApprovalOut, status_code=201,
             summary="Propose a new expansion fee")
async def propose_fee(request: Request, code: Code, body: sch.FeeIn, ctx: CtxDep,
                      op: OperatorDep, idempotency_key: KeyHeader = None) -> Response:
    """Maker-checker; 422 ``partner_invalid`` outside 20,000-200,000 fen, 409
    ``approval_pending``."""
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, _caller(op), idempotency_key, body,
        lambda: ApprovalOut.of(svc.propose_fee_change(
            ctx, op, svc.find_partner(ctx, code).id, body.expansion_fee_fen, body.reason)),
        status_code=201)


@router.post("/{code}/merchants", response_model=sch.AttachedOut,
             summary="Attach a merchant to the partner")
async def attach_merchant(request: Request, code: Code, body: sch.MerchantRefIn,
                          ctx: CtxDep, op: OperatorDep,
                          idempotency_key: KeyHeader = None) -> Response:
    """409 ``merchant_already_attached`` (to another partner), ``partner_state_invalid``;
    404 ``merchant_not_found``."""
    def run() -> sch.AttachedOut:
        p = svc.find_partner(ctx, code)
        changed = svc.attach_merchant(ctx, op, p.id, body.merchant_code)
        return sch.AttachedOut(partner=p.code, attached=body.merchant_code.strip().upper(),
                               changed=changed)

    return await idem.idempotent(request, ctx.engine, ctx.clock, _caller(op),
                                 idempotency_key, body, run)


@router.delete("/{code}/merchants/{merchant_code}", status_code=204,
               summary="Detach a merchant from the partner")
async def detach_merchant(code: Code, merchant_code: Annotated[str, Path(max_length=20)],
                          ctx: CtxDep, op: OperatorDep) -> Response:
    """409 ``not_attached``."""
    p = await run_in_threadpool(svc.find_partner, ctx, code)
    await run_in_threadpool(svc.detach_merchant, ctx, op, p.id, merchant_code)
    return Response(status_code=204)


@router.post("/{code}/terminals", response_model=sch.AttachedOut,
             summary="Attach a POS terminal to the partner")
async def attach_terminal(request: Request, code: Code, body: sch.TerminalRefIn,
                          ctx: CtxDep, op: OperatorDep,
                          idempotency_key: KeyHeader = None) -> Response:
    """409 ``terminal_already_attached``, ``terminal_state_invalid`` (retired),
    ``partner_state_invalid``; 404 ``terminal_not_found``."""
    def run() -> sch.AttachedOut:
        p = svc.find_partner(ctx, code)
        changed = svc.attach_terminal(ctx, op, p.id, body.terminal_id)
        return sch.AttachedOut(partner=p.code, attached=body.terminal_id.strip().upper(),
                               changed=changed)

    return await idem.idempotent(request, ctx.engine, ctx.clock, _caller(op),
                                 idempotency_key, body, run)


@router.delete("/{code}/terminals/{terminal_id}", status_code=204,
               summary="Detach a POS terminal from the partner")
async def detach_terminal(code: Code, terminal_id: Annotated[str, Path(max_length=12)],
                          ctx: CtxDep, op: OperatorDep) -> Response:
    """409 ``not_attached``."""
    p = await run_in_threadpool(svc.find_partner, ctx, code)
    await run_in_threadpool(svc.detach_terminal, ctx, op, p.id, terminal_id)
    return Response(status_code=204)


fees_router = APIRouter(prefix="/operator/partner-fees", tags=["partners"],
                        dependencies=[Depends(require_operator)],
                        responses=problem_responses(401, 403, 409, 422))


@fees_router.post("/maintenance", response_model=sch.FeeRunOut,
                  summary="Accrue a month's POS maintenance fees")
def accrue(body: sch.MonthIn, ctx: CtxDep, op: OperatorDep) -> sch.FeeRunOut:
    """Idempotent by itself: re-running a month makes nothing new. 422 ``month_invalid``,
    409 ``month_not_over``."""
    require_role(op)
    return sch.FeeRunOut.of(fees.accrue_maintenance(ctx, body.month))


@fees_router.post("/expansion", response_model=sch.FeeRunOut,
                  summary="Pay the expansion fees whose condition holds now")
def check_expansion(ctx: CtxDep, op: OperatorDep) -> sch.FeeRunOut:
    """Idempotent by itself: a merchant's fee is paid once, ever."""
    require_role(op)
    return sch.FeeRunOut.of(fees.check_expansion(ctx))


routers: list[APIRouter] = [router, fees_router]
