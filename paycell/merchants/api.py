"""Operators' merchant routes (``/v1/merchants``, ``X-API-Key``): apply on a merchant's
behalf, review, propose the activation (another operator approves it under
``/v1/approvals``), reject, suspend, reinstate, terminate, credentials and stores.
The merchants' own routes (signed requests) are in ``self_api.py``. POSTs take an
Idempotency-Key."""

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
from paycell.crypto import token_hash
from paycell.funding.cash_common import decode_cursor, encode_cursor
from paycell.merchants import credentials as creds
from paycell.merchants import onboarding as ob
from paycell.merchants import schemas as sch
from paycell.merchants import service as svc
from paycell.merchants.self_api import router as merchant_router
from paycell.operators import approvals
from paycell.operators.model import Operator
from paycell.operators.schemas import ApprovalOut
from paycell.operators.service import require_role

CtxDep = Annotated[Context, Depends(get_context)]
OperatorDep = Annotated[Operator, Depends(require_operator)]
MerchantId = Annotated[int, Path(ge=1, le=2**63 - 1)]
KeyId = Annotated[str, Path(max_length=40)]

router = APIRouter(prefix="/merchants", tags=["merchants"],
                   dependencies=[Depends(require_operator)],
                   responses=problem_responses(401, 403, 404, 409, 422))


def _caller(op: Operator) -> str:
    return f"operator:{op.id}"


@router.post("", response_model=sch.MerchantOut, status_code=201,
             summary="Record a merchant's application")
async def apply(request: Request, body: sch.ApplicationIn, ctx: CtxDep, op: OperatorDep,
                idempotency_key: KeyHeader = None) -> Response:
    """State ``applied``; the merchant gets its code (``M100001``). 422 ``merchant_invalid``
    (``field``)."""
    key = idem.check_key(idempotency_key)
    require_role(op)
    # The stored fingerprint must not reveal the bank account number.
    fingerprint = body.model_dump(exclude={"bank_account_number"}) | {
        "bank_account_number": token_hash(ctx.settings.secret_key,
                                          f"bank:{body.bank_account_number}")}
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, _caller(op), key, fingerprint,
        lambda: sch.MerchantOut.of(ob.apply(ctx, ob.Application(**body.model_dump()),
                                            actor=op.name,
                                            request_key=f"{_caller(op)}:{key}")),
        status_code=201)


@router.get("", response_model=sch.MerchantPage, summary="Merchants, newest first")
def list_merchants(ctx: CtxDep, state: Annotated[str | None, Query(max_length=12)] = None,
                   cursor: Annotated[str | None, Query(max_length=100)] = None,
                   limit: Annotated[int, Query(ge=1, le=200)] = 50) -> sch.MerchantPage:
    rows = svc.list_merchants(ctx, state=state, before_id=decode_cursor("merchants", cursor),
                              limit=limit + 1)
    nxt = encode_cursor("merchants", rows[limit - 1].id) if len(rows) > limit else None
    return sch.MerchantPage(items=[sch.MerchantOut.of(m) for m in rows[:limit]],
                            next_cursor=nxt)


@router.get("/{merchant_id}", response_model=sch.MerchantDetail, summary="A merchant in full")
def get_merchant(ctx: CtxDep, merchant_id: MerchantId) -> sch.MerchantDetail:
    """The merchant, its application (bank account masked), stores, credentials (no
    secrets), audit log and open approvals."""
    m = svc.get_merchant(ctx, merchant_id)
    now = ctx.clock.now_us()
    return sch.MerchantDetail(
        merchant=sch.MerchantOut.of(m), application=svc.application_details(ctx, m.id),
        stores=[sch.StoreOut.of(s) for s in svc.list_stores(ctx, m.id)],
        credentials=[sch.CredentialOut.of(c, now) for c in creds.list_credentials(ctx, m.id)],
        events=[sch.EventOut(kind=k, actor=a, reason=r, at=rfc3339(t))
                for k, a, r, t in svc.merchant_events(ctx, m.id)],
        pending_approvals=[a.id for a in approvals.list_pending(
            ctx, subject=f"merchant:{m.id}")])


@router.post("/{merchant_id}/review", response_model=sch.MerchantOut,
             summary="Start reviewing an application")
async def review(request: Request, merchant_id: MerchantId, body: sch.NoteIn, ctx: CtxDep,
                 op: OperatorDep, idempotency_key: KeyHeader = None) -> Response:
    """applied -> in_review. 409 ``merchant_state_invalid``."""
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, _caller(op), idempotency_key, body,
        lambda: sch.MerchantOut.of(ob.start_review(ctx, op, merchant_id, body.note)))


@router.post("/{merchant_id}/approval", response_model=ApprovalOut, status_code=201,
             summary="Propose activating a reviewed merchant")
async def propose_activation(request: Request, merchant_id: MerchantId, body: sch.ReasonIn,
                             ctx: CtxDep, op: OperatorDep,
                             idempotency_key: KeyHeader = None) -> Response:
    """Maker-checker: another operator approves with ``POST /v1/approvals/{id}/approve``,
    which activates the merchant (payable account, webhook secret). 409
    ``merchant_state_invalid``, ``approval_pending``."""
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, _caller(op), idempotency_key, body,
        lambda: ApprovalOut.of(ob.propose_activation(ctx, op, merchant_id, body.reason)),
        status_code=201)


def _lifecycle(name: str, fn: ob.Lifecycle, summary: str, doc: str) -> None:
    async def route(request: Request, merchant_id: MerchantId, body: sch.ReasonIn,
                    ctx: CtxDep, op: OperatorDep,
                    idempotency_key: KeyHeader = None) -> Response:
        return await idem.idempotent(
            request, ctx.engine, ctx.clock, _caller(op), idempotency_key, body,
            lambda: sch.MerchantOut.of(fn(ctx, op, merchant_id, body.reason)))

    route.__doc__ = doc + " 409 ``merchant_state_invalid``."
    route.__name__ = f"{name}_merchant"
    router.post(f"/{{merchant_id}}/{name}", response_model=sch.MerchantOut,
                summary=summary)(route)


_lifecycle("reject", ob.reject_application, "Reject an application",
           "applied / in_review -> rejected; an open activation proposal is rejected too.")
_lifecycle("suspend", ob.suspend, "Suspend a merchant",
           "active -> suspended: its signed requests get 403 merchant_not_active.")
_lifecycle("reinstate", ob.reinstate, "Reinstate a suspended merchant",
           "suspended -> active.")


@router.post("/{merchant_id}/terminate", response_model=ApprovalOut, status_code=201,
             summary="Propose terminating a merchant (another operator approves)")
async def propose_termination(request: Request, merchant_id: MerchantId, body: sch.ReasonIn,
                              ctx: CtxDep, op: OperatorDep,
                              idempotency_key: KeyHeader = None) -> Response:
    """Termination is final, so it is maker-checker: another operator approves with
    ``POST /v1/approvals/{id}/approve``, which terminates the merchant (active / suspended
    -> terminated; every credential revoked; the payable account stays for settlement).
    To stop a merchant at once, suspend it. 409 ``merchant_state_invalid``,
    ``approval_pending``."""
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, _caller(op), idempotency_key, body,
        lambda: ApprovalOut.of(ob.propose_termination(ctx, op, merchant_id, body.reason)),
        status_code=201)


@router.post("/{merchant_id}/credentials", response_model=sch.CredentialCreatedOut,
             status_code=201, summary="Issue an API credential to a merchant")
async def issue_credential(request: Request, merchant_id: MerchantId, body: sch.CredentialIn,
                           ctx: CtxDep, op: OperatorDep,
                           idempotency_key: KeyHeader = None) -> Response:
    """The HMAC secret is in this answer only (hand it to the merchant securely); a replay
    has ``secret`` null."""
    require_role(op)
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, _caller(op), idempotency_key, body,
        lambda: _created(ctx, merchant_id, body, f"operator:{op.name}"), status_code=201,
        redact=lambda out: out.model_copy(update={"secret": None, "secret_shown": False}))


def _created(ctx: Context, merchant_id: int, body: sch.CredentialIn,
             actor: str) -> sch.CredentialCreatedOut:
    cred, secret = creds.issue_credential(ctx, merchant_id, actor=actor, kind=body.kind,
                                          public_key=body.public_key, label=body.label)
    return sch.CredentialCreatedOut(credential=sch.CredentialOut.of(cred, ctx.clock.now_us()),
                                    secret=secret, secret_shown=secret is not None)


@router.post("/{merchant_id}/credentials/{key_id}/revoke", response_model=sch.CredentialOut,
             summary="Revoke a merchant's credential")
async def revoke_credential(request: Request, merchant_id: MerchantId, key_id: KeyId,
                            body: sch.RevokeIn, ctx: CtxDep, op: OperatorDep,
                            idempotency_key: KeyHeader = None) -> Response:
    """Operators may revoke even the last active key (a leak)."""
    require_role(op)
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, _caller(op), idempotency_key, body,
        lambda: sch.CredentialOut.of(creds.revoke_credential(
            ctx, merchant_id, key_id, actor=f"operator:{op.name}", after_s=body.after_s,
            allow_last=True), ctx.clock.now_us()))


@router.post("/{merchant_id}/stores", response_model=sch.StoreOut, status_code=201,
             summary="Open a store for a merchant")
async def add_store(request: Request, merchant_id: MerchantId, body: sch.StoreIn,
                    ctx: CtxDep, op: OperatorDep, idempotency_key: KeyHeader = None) -> Response:
    """409 ``store_code_taken``."""
    require_role(op)
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, _caller(op), idempotency_key, body,
        lambda: sch.StoreOut.of(svc.add_store(ctx, merchant_id, body.code, body.name,
                                              body.address, f"operator:{op.name}")),
        status_code=201)


routers: list[APIRouter] = [router, merchant_router]
