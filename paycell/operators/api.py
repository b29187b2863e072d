"""Operators (``/v1/operators``) and maker-checker approvals (``/v1/approvals``).

Every route needs an operator's ``X-API-Key``; managing operators needs the ``admin`` role,
proposing and deciding approvals ``admin`` or ``operator``. POSTs take an Idempotency-Key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from paycell.api import idempotency as idem
from paycell.api.auth import require_operator
from paycell.api.deps import get_context
from paycell.api.errors import problem_responses
from paycell.api.params import KeyHeader
from paycell.clock import rfc3339
from paycell.context import Context
from paycell.funding.cash_common import decode_cursor, encode_cursor
from paycell.operators import approvals
from paycell.operators import schemas as sch
from paycell.operators import service as ops
from paycell.operators.model import Operator

CtxDep = Annotated[Context, Depends(get_context)]
OperatorDep = Annotated[Operator, Depends(require_operator)]
ApprovalId = Annotated[int, Path(ge=1, le=2**63 - 1)]

operators_router = APIRouter(prefix="/operators", tags=["operators"],
                             dependencies=[Depends(require_operator)],
                             responses=problem_responses(401, 403, 422))


@operators_router.get("/me", response_model=sch.OperatorOut, summary="Who am I")
def me(op: OperatorDep) -> sch.OperatorOut:
    return sch.OperatorOut.of(op)


@operators_router.get("", response_model=sch.OperatorList, summary="Operators (admin)")
def list_operators(ctx: CtxDep, op: OperatorDep) -> sch.OperatorList:
    ops.require_role(op, "admin")
    return sch.OperatorList(items=[sch.OperatorRow(**{**r, "created_at": rfc3339(r["created_at"])})
                                   for r in ops.list_operators(ctx)])


@operators_router.post("", response_model=sch.OperatorCreatedOut, status_code=201,
                       responses=problem_responses(409), summary="Add an operator (admin)")
async def create_operator(request: Request, body: sch.OperatorIn, ctx: CtxDep,
                          op: OperatorDep, idempotency_key: KeyHeader = None) -> Response:
    """The new operator's API key is in this answer only (a replay has ``api_key`` null).
    409 ``operator_name_taken``; 422 ``operator_invalid``."""
    ops.require_role(op, "admin")

    def run() -> sch.OperatorCreatedOut:
        created, key = ops.create_operator(ctx, body.name, body.role)
        return sch.OperatorCreatedOut(operator=sch.OperatorOut.of(created), api_key=key,
                                      api_key_shown=True)

    return await idem.idempotent(
        request, ctx.engine, ctx.clock, f"operator:{op.id}", idempotency_key, body, run,
        status_code=201,
        redact=lambda out: out.model_copy(update={"api_key": None, "api_key_shown": False}))


@operators_router.post("/{name}/disable", response_model=sch.OperatorOut,
                       responses=problem_responses(404), summary="Disable an operator (admin)")
async def disable_operator(request: Request, name: Annotated[str, Path(max_length=64)],
                           ctx: CtxDep, op: OperatorDep,
                           idempotency_key: KeyHeader = None) -> Response:
    """Its API key stops working at once."""
    ops.require_role(op, "admin")
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, f"operator:{op.id}", idempotency_key, {},
        lambda: sch.OperatorOut.of(ops.disable_operator(ctx, name)))


approvals_router = APIRouter(prefix="/approvals", tags=["approvals"],
                             dependencies=[Depends(require_operator)],
                             responses=problem_responses(401, 403, 422))


@approvals_router.get("", response_model=sch.ApprovalPage, summary="Approvals, newest first")
def list_approvals(ctx: CtxDep, state: Annotated[str | None, Query(max_length=10)] = None,
                   cursor: Annotated[str | None, Query(max_length=100)] = None,
                   limit: Annotated[int, Query(ge=1, le=200)] = 50) -> sch.ApprovalPage:
    """``state=pending`` lists what waits for a second operator."""
    rows = approvals.list_approvals(ctx, state=state, before_id=decode_cursor("appr", cursor),
                                    limit=limit + 1)
    nxt = encode_cursor("appr", rows[limit - 1].id) if len(rows) > limit else None
    return sch.ApprovalPage(items=[sch.ApprovalOut.of(a) for a in rows[:limit]],
                            next_cursor=nxt)


@approvals_router.get("/{approval_id}", response_model=sch.ApprovalOut,
                      responses=problem_responses(404), summary="An approval")
def get_approval(ctx: CtxDep, approval_id: ApprovalId) -> sch.ApprovalOut:
    return sch.ApprovalOut.of(approvals.get_approval(ctx, approval_id))


@approvals_router.post("", response_model=sch.ApprovalOut, status_code=201,
                       responses=problem_responses(409), summary="Propose an action")
async def propose(request: Request, body: sch.ProposeIn, ctx: CtxDep, op: OperatorDep,
                  idempotency_key: KeyHeader = None) -> Response:
    """Generic proposal of a registered action (e.g. ``merchant_activate``); packages also
    offer their own routes for this. 409 ``approval_pending``; 422
    ``approval_action_unknown``."""
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, f"operator:{op.id}", idempotency_key, body,
        lambda: sch.ApprovalOut.of(approvals.propose(ctx, op, body.action, body.subject,
                                                     body.payload, body.reason)),
        status_code=201)


@approvals_router.post("/{approval_id}/approve", response_model=sch.ApprovalOut,
                       responses=problem_responses(404, 409), summary="Approve (checker)")
async def approve(request: Request, approval_id: ApprovalId, ctx: CtxDep, op: OperatorDep,
                  idempotency_key: KeyHeader = None) -> Response:
    """Runs the action. 403 ``approval_same_operator`` (the proposer cannot approve),
    ``operator_role_forbidden``; 409 ``approval_not_pending``; or the action's own
    refusal (the approval is then ``failed``)."""
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, f"operator:{op.id}", idempotency_key, {},
        lambda: sch.ApprovalOut.of(approvals.approve(ctx, op, approval_id)))


@approvals_router.post("/{approval_id}/reject", response_model=sch.ApprovalOut,
                       responses=problem_responses(404, 409), summary="Reject")
async def reject(request: Request, approval_id: ApprovalId, body: sch.RejectIn, ctx: CtxDep,
                 op: OperatorDep, idempotency_key: KeyHeader = None) -> Response:
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, f"operator:{op.id}", idempotency_key, body,
        lambda: sch.ApprovalOut.of(approvals.reject(ctx, op, approval_id, body.note)))


routers: list[APIRouter] = [operators_router, approvals_router]
