"""HTTP routes for vouchers, agents and P2P: the wallet app's (Bearer token), the agents'
(``X-Agent-Key``) and the operators' (``X-API-Key``). Every POST takes an Idempotency-Key."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request, Security
from fastapi.responses import Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from paycell.api import idempotency as idem
from paycell.api.auth import require_operator
from paycell.api.deps import get_context
from paycell.api.desk import Lane, desk_of
from paycell.api.errors import problem_responses
from paycell.api.lean import lean
from paycell.api.params import MAX_ID, KeyHeader
from paycell.context import Context
from paycell.funding import agents, p2p, p2p_send, vouchers
from paycell.funding import cash_schemas as sch
from paycell.funding.cash_common import decode_cursor, encode_cursor
from paycell.subscribers.auth import current_subscriber
from paycell.subscribers.service import Subscriber

M = TypeVar("M", bound=BaseModel)
CtxDep = Annotated[Context, Depends(get_context)]
SubscriberDep = Annotated[Subscriber, Depends(current_subscriber)]
Cursor = Annotated[str | None, Query(max_length=100)]
Limit = Annotated[int, Query(ge=1, le=200)]

_agent_key = APIKeyHeader(name="X-Agent-Key", auto_error=False, scheme_name="AgentKey",
                          description="the agent's own API key, issued when it was registered")


async def current_agent(request: Request,
                        key: str | None = Security(_agent_key)) -> agents.Agent:
    """FastAPI dependency: the agent whose key came with the request (401 otherwise)."""
    ctx: Context = request.app.state.ctx
    return await run_in_threadpool(agents.authenticate_agent, ctx, key)


AgentDep = Annotated[agents.Agent, Depends(current_agent)]


def _page_cursor(kind: str, items: list[Any], limit: int) -> str | None:
    return encode_cursor(kind, items[limit - 1].id) if len(items) > limit else None


# -- the wallet app -------------------------------------------------------------------------
wallet_router = APIRouter(prefix="/wallet", tags=["wallet"],
                          responses=problem_responses(401, 422))


@wallet_router.post("/vouchers/redeem", response_model=sch.VoucherRedemptionOut,
                    responses=problem_responses(403, 409), summary="Redeem a recharge card")
async def redeem_voucher(request: Request, body: sch.VoucherRedeemIn, ctx: CtxDep,
                         sub: SubscriberDep, idempotency_key: KeyHeader = None) -> Response:
    """Credit a recharge card's face value to the wallet, once per card. 403
    ``voucher_invalid`` (``attempts_left``) or ``voucher_redemption_locked``
    (``locked_until``); 409 ``voucher_already_redeemed``, ``voucher_expired``,
    ``voucher_void``, ``balance_cap_exceeded``; 422 ``voucher_format_invalid``."""
    # The stored request fingerprint must not let anyone recover the secret.
    fingerprint = {"card_number": body.card_number,
                   "secret": _keyed(ctx, f"voucher:{sub.id}:{body.secret}")}
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, f"subscriber:{sub.id}", idempotency_key, fingerprint,
        lambda: sch.VoucherRedemptionOut.of(
            vouchers.redeem_voucher(ctx, sub, body.card_number, body.secret)))


@wallet_router.post("/transfers", response_model=sch.P2PTransferOut, status_code=201,
                    responses=problem_responses(403, 409), summary="Send money to a number")
@lean
async def send_transfer(request: Request, body: sch.P2PTransferIn, ctx: CtxDep,
                        sub: SubscriberDep, idempotency_key: KeyHeader = None) -> Response:
    """P2P by MSISDN with the payment PIN. To a number without a wallet the money waits
    (``pending_claim``) and the number gets an SMS; unclaimed, it returns after 7 days.
    403 ``pin_invalid`` / ``pin_locked``; 409 ``insufficient_balance``, ``limit_exceeded``,
    ``subscriber_frozen``, ``balance_cap_exceeded``; 422 ``p2p_to_self``, ``invalid_msisdn``."""
    fingerprint = {**body.model_dump(exclude={"pin"}),
                   "pin": _keyed(ctx, f"pin:{sub.id}:{body.pin}")}
    key = idem.check_key(idempotency_key)
    path = request.url.path
    claim = idem.Claim(f"subscriber:{sub.id}", key,
                       idem.request_hash(request.method, path, fingerprint), path, 201)
    cmd = p2p_send.SendCommand(sub, body.to_msisdn, body.amount_fen, body.pin, body.note, key)
    lane: Lane[tuple[idem.Claim, p2p_send.SendCommand], idem.Reply] = Lane(
        "p2p", lambda items: _send_many(ctx, items), keys=lambda item: (item[0].id,))
    reply: idem.Reply = await desk_of(request.app.state).submit(lane, (claim, cmd))
    return reply.response()


def _send_many(ctx: Context, items: list[tuple[idem.Claim, p2p_send.SendCommand]]
               ) -> list[idem.Reply]:
    """The P2P desk's batch: the transfers, their Idempotency-Keys and their stored answers
    in one transaction (``funding/p2p_send.py``)."""
    return idem.run_keyed(
        ctx.clock, items,
        lambda cmds, ahead, after: p2p_send.send_batch(ctx, cmds, ahead=ahead, after=after),
        lambda cmd, sent: sch.P2PTransferOut.of(sent.unwrap(), cmd.sender.id))


@wallet_router.get("/transfers", response_model=sch.P2PTransferPage,
                   summary="My P2P transfers, sent and received")
def list_transfers(ctx: CtxDep, sub: SubscriberDep, cursor: Cursor = None,
                   limit: Limit = 50) -> sch.P2PTransferPage:
    """Newest first. Money waiting for this number is delivered first (as at login)."""
    p2p.claim_pending_transfers(ctx, sub)
    rows = p2p.list_transfers(ctx, sub.id, before_id=decode_cursor("p2p", cursor),
                              limit=limit + 1)
    return sch.P2PTransferPage(items=[sch.P2PTransferOut.of(t, sub.id) for t in rows[:limit]],
                               next_cursor=_page_cursor("p2p", rows, limit))


def _keyed(ctx: Context, text: str) -> str:
    return hmac.new(ctx.settings.secret_key.encode(), text.encode(), hashlib.sha256).hexdigest()


# -- agents ---------------------------------------------------------------------------------
agent_router = APIRouter(prefix="/agent", tags=["agent"], responses=problem_responses(401, 422))


@agent_router.get("", response_model=sch.AgentOut, summary="The agent and its float")
def get_me(ctx: CtxDep, agent: AgentDep) -> sch.AgentOut:
    return sch.AgentOut.of(agent, agents.float_account(ctx, agent))


@agent_router.post("/cash-in", response_model=sch.AgentTransactionOut, status_code=201,
                   responses=problem_responses(404, 409), summary="Cash in to a wallet")
async def cash_in(request: Request, body: sch.CashInIn, ctx: CtxDep, agent: AgentDep,
                  idempotency_key: KeyHeader = None) -> Response:
    """Move cash received at the counter from the agent's float to a wallet. The agent's
    ``reference`` is idempotent too. 404 ``recipient_not_registered``; 409
    ``agent_float_insufficient`` (``available_fen``), ``agent_reference_reused``,
    ``balance_cap_exceeded``."""
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, f"agent:{agent.id}", idempotency_key, body,
        lambda: sch.AgentTransactionOut.of(
            agents.cash_in(ctx, agent, body.msisdn, body.amount_fen, body.reference)),
        status_code=201)


@agent_router.get("/transactions", response_model=sch.AgentTransactionPage,
                  summary="The agent's cash-ins and float top-ups")
def agent_transactions(ctx: CtxDep, agent: AgentDep, cursor: Cursor = None,
                       limit: Limit = 50) -> sch.AgentTransactionPage:
    """Newest first; only this agent's."""
    rows = agents.list_transactions(ctx, agent.id, before_id=decode_cursor("agent", cursor),
                                    limit=limit + 1)
    return sch.AgentTransactionPage(
        items=[sch.AgentTransactionOut.of(t) for t in rows[:limit]],
        next_cursor=_page_cursor("agent", rows, limit))


# -- operators ------------------------------------------------------------------------------
operator_router = APIRouter(prefix="/operator", tags=["operator"],
                            dependencies=[Depends(require_operator)],
                            responses=problem_responses(401, 422))
BatchId = Annotated[int, Path(ge=1, le=MAX_ID)]
AgentId = Annotated[int, Path(ge=1, le=MAX_ID)]


@operator_router.post("/voucher-batches", response_model=sch.VoucherBatchCreatedOut,
                      status_code=201, summary="Generate a batch of recharge cards")
async def generate_batch(request: Request, body: sch.VoucherBatchIn, ctx: CtxDep,
                         idempotency_key: KeyHeader = None) -> Response:
    """The cards' numbers and secrets are in this answer and nowhere else: a replay with
    the same key returns the batch with ``secrets_shown`` false and no cards."""
    key = idem.check_key(idempotency_key)
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, "operator", key, body,
        lambda: sch.VoucherBatchCreatedOut.of(vouchers.generate_batch(
            ctx, body.face_value_fen, body.count, body.expires_on,
            request_key=f"operator:{key}")), status_code=201,
        redact=lambda out: out.model_copy(update={"secrets_shown": False, "cards": []}))


@operator_router.get("/voucher-batches", response_model=sch.VoucherBatchPage,
                     summary="Voucher batches, newest first")
def list_batches(ctx: CtxDep, cursor: Cursor = None, limit: Limit = 50) -> sch.VoucherBatchPage:
    rows = vouchers.list_batches(ctx, before_id=decode_cursor("batch", cursor),
                                 limit=limit + 1)
    return sch.VoucherBatchPage(items=[sch.VoucherBatchOut.of(b) for b in rows[:limit]],
                                next_cursor=_page_cursor("batch", rows, limit))


@operator_router.get("/voucher-batches/{batch_id}", response_model=sch.VoucherBatchSummaryOut,
                     responses=problem_responses(404), summary="A batch: issued and redeemed")
def batch_summary(ctx: CtxDep, batch_id: BatchId) -> sch.VoucherBatchSummaryOut:
    return sch.VoucherBatchSummaryOut.of(vouchers.batch_summary(ctx, batch_id))


@operator_router.post("/voucher-batches/{batch_id}/void", response_model=sch.VoucherBatchOut,
                      responses=problem_responses(404), summary="Void a batch")
async def void_batch(request: Request, ctx: CtxDep, batch_id: BatchId,
                     idempotency_key: KeyHeader = None) -> Response:
    """Every unredeemed card of the batch becomes unusable (``voucher_void``)."""
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, "operator", idempotency_key, {},
        lambda: sch.VoucherBatchOut.of(vouchers.void_batch(ctx, batch_id)))


@operator_router.post("/agents", response_model=sch.AgentCreatedOut, status_code=201,
                      responses=problem_responses(409), summary="Register an agent outlet")
async def create_agent(request: Request, body: sch.AgentCreateIn, ctx: CtxDep,
                       idempotency_key: KeyHeader = None) -> Response:
    """The agent's API key is in this answer only (a replay has ``api_key`` null). 409
    ``agent_code_taken``."""
    key = idem.check_key(idempotency_key)

    def run() -> sch.AgentCreatedOut:
        agent, api_key = agents.create_agent(ctx, body.code, body.name, body.location,
                                             request_key=f"operator:{key}")
        return sch.AgentCreatedOut(agent=sch.AgentOut.of(agent, agents.float_account(ctx, agent)),
                                   api_key=api_key, api_key_shown=api_key is not None)

    return await idem.idempotent(
        request, ctx.engine, ctx.clock, "operator", key, body, run, status_code=201,
        redact=lambda out: out.model_copy(update={"api_key": None, "api_key_shown": False}))


@operator_router.get("/agents", response_model=sch.AgentList, summary="Agent outlets")
def list_agents(ctx: CtxDep, cursor: Cursor = None, limit: Limit = 100) -> sch.AgentList:
    after = decode_cursor("agents", cursor) or 0
    rows = agents.list_agents(ctx, after_id=after, limit=limit + 1)
    return sch.AgentList(
        items=[sch.AgentOut.of(a, agents.float_account(ctx, a)) for a in rows[:limit]],
        next_cursor=_page_cursor("agents", rows, limit))


@operator_router.get("/agents/{agent_id}", response_model=sch.AgentOut,
                     responses=problem_responses(404), summary="An agent and its float")
def get_agent(ctx: CtxDep, agent_id: AgentId) -> sch.AgentOut:
    agent = agents.get_agent(ctx, agent_id)
    return sch.AgentOut.of(agent, agents.float_account(ctx, agent))


@operator_router.post("/agents/{agent_id}/float", response_model=sch.AgentTransactionOut,
                      status_code=201, responses=problem_responses(404, 409),
                      summary="Credit an agent's float")
async def top_up_float(request: Request, body: sch.FloatTopUpIn, ctx: CtxDep,
                       agent_id: AgentId, idempotency_key: KeyHeader = None) -> Response:
    """The agent deposited cash at the operator's bank: custody reserve -> float. The
    deposit ``reference`` is idempotent per agent (409 ``agent_reference_reused``)."""
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, "operator", idempotency_key, body,
        lambda: sch.AgentTransactionOut.of(
            agents.top_up_float(ctx, agent_id, body.amount_fen, body.reference)),
        status_code=201)


routers = (wallet_router, agent_router, operator_router)
