"""The merchants' own routes, ``/v1/merchant``: every request is signed (see
``paycell.merchants.auth``) and sees only the signing merchant's data; ids of another
merchant's stores or keys are simply not found. POSTs take an Idempotency-Key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from paycell.api import idempotency as idem
from paycell.api.deps import get_context
from paycell.api.errors import problem_responses
from paycell.api.params import KeyHeader
from paycell.context import Context
from paycell.merchants import credentials as creds
from paycell.merchants import schemas as sch
from paycell.merchants import service as svc
from paycell.merchants.auth import current_merchant
from paycell.merchants.model import Merchant

CtxDep = Annotated[Context, Depends(get_context)]
MerchantDep = Annotated[Merchant, Depends(current_merchant)]
StoreId = Annotated[int, Path(ge=1, le=2**63 - 1)]
KeyId = Annotated[str, Path(max_length=40)]

router = APIRouter(prefix="/merchant", tags=["merchant"],
                   responses=problem_responses(401, 403, 422))


def _caller(m: Merchant) -> str:
    return f"merchant:{m.id}"


def _actor(request: Request, m: Merchant) -> str:
    return f"merchant:{m.code}:{getattr(request.state, 'merchant_key_id', '')}"


@router.get("", response_model=sch.MerchantOut, summary="Who am I")
def me(merchant: MerchantDep) -> sch.MerchantOut:
    return sch.MerchantOut.of(merchant)


@router.get("/credentials", response_model=sch.CredentialList, summary="My API credentials")
def list_credentials(ctx: CtxDep, merchant: MerchantDep) -> sch.CredentialList:
    """Every credential (revoked too), never a secret."""
    now = ctx.clock.now_us()
    return sch.CredentialList(items=[sch.CredentialOut.of(c, now)
                                     for c in creds.list_credentials(ctx, merchant.id)])


@router.post("/credentials", response_model=sch.CredentialCreatedOut, status_code=201,
             responses=problem_responses(409), summary="Create a credential (rotation)")
async def create_credential(request: Request, body: sch.CredentialIn, ctx: CtxDep,
                            merchant: MerchantDep, idempotency_key: KeyHeader = None) -> Response:
    """A new key while the old ones keep working; the HMAC secret is in this answer only.
    409 ``credential_limit_reached``; 422 ``credential_invalid``."""
    actor = _actor(request, merchant)

    def run() -> sch.CredentialCreatedOut:
        cred, secret = creds.issue_credential(ctx, merchant.id, actor=actor, kind=body.kind,
                                              public_key=body.public_key, label=body.label)
        return sch.CredentialCreatedOut(
            credential=sch.CredentialOut.of(cred, ctx.clock.now_us()), secret=secret,
            secret_shown=secret is not None)

    return await idem.idempotent(
        request, ctx.engine, ctx.clock, _caller(merchant), idempotency_key, body, run,
        status_code=201,
        redact=lambda out: out.model_copy(update={"secret": None, "secret_shown": False}))


@router.post("/credentials/{key_id}/revoke", response_model=sch.CredentialOut,
             responses=problem_responses(404, 409), summary="Revoke one of my credentials")
async def revoke_credential(request: Request, key_id: KeyId, body: sch.RevokeIn, ctx: CtxDep,
                            merchant: MerchantDep,
                            idempotency_key: KeyHeader = None) -> Response:
    """Now, or ``after_s`` seconds from now. 404 ``credential_not_found`` (not mine);
    409 ``credential_last_active``."""
    actor = _actor(request, merchant)
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, _caller(merchant), idempotency_key, body,
        lambda: sch.CredentialOut.of(creds.revoke_credential(
            ctx, merchant.id, key_id, actor=actor, after_s=body.after_s), ctx.clock.now_us()))


@router.put("/notify-url", response_model=sch.MerchantOut,
            summary="Where notifications go by default")
def set_notify_url(request: Request, body: sch.NotifyUrlIn, ctx: CtxDep,
                   merchant: MerchantDep) -> sch.MerchantOut:
    """Used for orders created without a ``notify_url``; ``null`` clears it. 422
    ``merchant_invalid`` for anything but an http(s) URL."""
    return sch.MerchantOut.of(svc.set_notify_url(ctx, merchant.id, body.notify_url,
                                                 _actor(request, merchant)))


@router.get("/webhook-secret", response_model=sch.WebhookSecretOut,
            summary="The secret our notifications are signed with")
def get_webhook_secret(ctx: CtxDep, merchant: MerchantDep) -> sch.WebhookSecretOut:
    return sch.WebhookSecretOut.of(svc.webhook_secrets(ctx, merchant.id))


@router.post("/webhook-secret/rotate", response_model=sch.WebhookSecretOut,
             summary="Rotate the webhook secret")
async def rotate_webhook_secret(request: Request, ctx: CtxDep, merchant: MerchantDep,
                                idempotency_key: KeyHeader = None) -> Response:
    """A new secret; notifications carry a signature with the old one too for
    ``PAYCELL_WEBHOOK_SECRET_OVERLAP_S`` (a day by default). A replay of the same
    Idempotency-Key does not show the new secret again (``GET`` it)."""
    actor = _actor(request, merchant)

    def run() -> sch.WebhookSecretOut:
        svc.rotate_webhook_secret(ctx, merchant.id, actor)
        return sch.WebhookSecretOut.of(svc.webhook_secrets(ctx, merchant.id))

    return await idem.idempotent(
        request, ctx.engine, ctx.clock, _caller(merchant), idempotency_key, {}, run,
        redact=lambda out: out.model_copy(update={"secret": "(shown once; GET it)"}))


@router.get("/stores", response_model=sch.StoreList, summary="My stores")
def list_stores(ctx: CtxDep, merchant: MerchantDep) -> sch.StoreList:
    return sch.StoreList(items=[sch.StoreOut.of(s) for s in svc.list_stores(ctx, merchant.id)])


@router.get("/stores/{store_id}", response_model=sch.StoreOut,
            responses=problem_responses(404), summary="One of my stores")
def get_store(ctx: CtxDep, merchant: MerchantDep, store_id: StoreId) -> sch.StoreOut:
    """404 ``store_not_found`` for another merchant's store as for none at all."""
    return sch.StoreOut.of(svc.get_store(ctx, merchant.id, store_id))


@router.post("/stores", response_model=sch.StoreOut, status_code=201,
             responses=problem_responses(409), summary="Open a store")
async def add_store(request: Request, body: sch.StoreIn, ctx: CtxDep, merchant: MerchantDep,
                    idempotency_key: KeyHeader = None) -> Response:
    """409 ``store_code_taken``; 422 ``merchant_invalid``."""
    actor = _actor(request, merchant)
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, _caller(merchant), idempotency_key, body,
        lambda: sch.StoreOut.of(svc.add_store(ctx, merchant.id, body.code, body.name,
                                              body.address, actor)), status_code=201)


@router.post("/stores/{store_id}/close", response_model=sch.StoreOut,
             responses=problem_responses(404), summary="Close one of my stores")
async def close_store(request: Request, store_id: StoreId, ctx: CtxDep, merchant: MerchantDep,
                      idempotency_key: KeyHeader = None) -> Response:
    actor = _actor(request, merchant)
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, _caller(merchant), idempotency_key, {},
        lambda: sch.StoreOut.of(svc.close_store(ctx, merchant.id, store_id, actor)))
