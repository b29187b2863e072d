"""HTTP routes of on-site payment: the terminals' own API (``/v1/terminal/...``, every
request MACed with the terminal's key) and the operators' (``/v1/operator/terminals``).

A terminal request carries ``X-Terminal-Id``, ``X-Terminal-Timestamp`` (unix seconds),
``X-Terminal-Nonce`` (8 to 64 of ``A-Z a-z 0-9 _ -``, never reused) and ``X-Terminal-MAC``:
hex of the ISO 9797-1 retail MAC under the terminal key over
``METHOD \\n path \\n terminal id \\n timestamp \\n nonce \\n hex(sha256(body))``
(``terminal_auth.message_mac``). Declines are answers (200, ``approved`` false, a response
code), not errors.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from paycell.api import idempotency as idem
from paycell.api.auth import require_operator
from paycell.api.deps import get_context
from paycell.api.desk import Lane, desk_of
from paycell.api.errors import problem_responses
from paycell.api.lean import lean
from paycell.api.params import KeyHeader
from paycell.clock import rfc3339
from paycell.context import Context
from paycell.merchants.errors import MerchantNotFoundError
from paycell.merchants.service import find_by_code, get_merchant
from paycell.onsite import authorise as au
from paycell.onsite import authorise_batch as ab
from paycell.onsite import pos_returns as pr
from paycell.onsite import terminal_auth
from paycell.onsite import terminals as tm

CtxDep = Annotated[Context, Depends(get_context)]
_tid = APIKeyHeader(name="X-Terminal-Id", auto_error=False, scheme_name="TerminalMAC",
                    description="The terminal id; with X-Terminal-Timestamp, X-Terminal-Nonce "
                                "and X-Terminal-MAC (see docs/onsite.md).")


async def current_terminal(request: Request, _: str | None = Depends(_tid)) -> tm.Terminal:
    """FastAPI dependency: the active terminal whose MAC the request carries."""
    ctx: Context = request.app.state.ctx
    body = await request.body()
    h = request.headers
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return await run_in_threadpool(
        lambda: terminal_auth.authenticate(
            ctx, method=request.method, target=target, terminal_id=h.get("X-Terminal-Id"),
            timestamp=h.get("X-Terminal-Timestamp"), nonce=h.get("X-Terminal-Nonce"),
            mac=h.get("X-Terminal-MAC"), body=body))


TermDep = Annotated[tm.Terminal, Depends(current_terminal)]


async def signed_message(request: Request, _: str | None = Depends(_tid)
                         ) -> terminal_auth.Signed:
    """FastAPI dependency for the batched authorisation: the message's MAC and timestamp
    checked (the terminal's key is remembered per process); its nonce and the terminal's
    state are left to the batch's transaction."""
    ctx: Context = request.app.state.ctx
    body = await request.body()
    h = request.headers
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")

    def verify() -> terminal_auth.Signed:
        return terminal_auth.verify_signed(
            ctx, method=request.method, target=target, terminal_id=h.get("X-Terminal-Id"),
            timestamp=h.get("X-Terminal-Timestamp"), nonce=h.get("X-Terminal-Nonce"),
            mac=h.get("X-Terminal-MAC"), body=body)

    if terminal_auth.known(ctx, h.get("X-Terminal-Id")):
        return verify()  # no database read: no thread needed
    return await run_in_threadpool(verify)


SignedDep = Annotated[terminal_auth.Signed, Depends(signed_message)]
Stan = Annotated[str, Field(pattern=r"^[0-9]{6}$", description="system trace audit number")]
BatchNo = Annotated[int, Field(ge=1, le=999_999)]
Fen = Annotated[int, Field(gt=0, le=10**12)]


# -- schemas ----------------------------------------------------------------------------------
class BatchOut(BaseModel):
    terminal_id: str
    batch_no: int
    state: str
    opened_at: str
    closed_at: str | None

    @classmethod
    def of(cls, b: tm.Batch) -> BatchOut:
        return cls(terminal_id=b.terminal_id, batch_no=b.batch_no, state=b.state,
                   opened_at=rfc3339(b.opened_at),
                   closed_at=None if b.closed_at is None else rfc3339(b.closed_at))


class AuthIn(BaseModel):
    merchant_code: str = Field(max_length=16)
    store_code: str = Field(max_length=32)
    batch_no: BatchNo
    stan: Stan
    pan: str = Field(pattern=r"^[0-9]{12,19}$")
    psn: str = Field(pattern=r"^[0-9]{2}$")
    amount_fen: Fen
    other_fen: int = Field(0, ge=0, le=10**12)
    currency: str = Field("0156", pattern=r"^[0-9]{4}$")
    country: str = Field("0156", pattern=r"^[0-9]{4}$")
    date: str = Field(pattern=r"^[0-9]{6}$", description="YYMMDD")
    txn_type: str = Field("00", pattern=r"^[0-9]{2}$")
    tvr: str = Field("0000000000", pattern=r"^[0-9A-Fa-f]{10}$")
    aip: str = Field("7C00", pattern=r"^[0-9A-Fa-f]{4}$")
    cvr: str = Field("03A00000", pattern=r"^[0-9A-Fa-f]{8}$")
    unpredictable: str = Field(pattern=r"^[0-9A-Fa-f]{8}$")
    atc: int = Field(ge=0, le=0xFFFF)
    arqc: str = Field(pattern=r"^[0-9A-Fa-f]{16}$")
    pin: str | None = Field(None, max_length=12, description="the wallet PIN, above the "
                                                             "no-PIN limit")


class AuthOut(BaseModel):
    approved: bool
    response_code: str | None
    response_text: str | None
    reason: str | None
    state: str
    terminal_id: str
    batch_no: int
    stan: str
    amount_fen: int
    refunded_fen: int
    auth_code: str | None
    arpc: str | None
    arc: str | None = Field(description="the authorisation response code the ARPC covers, hex")
    pan_masked: str | None
    atc: int | None
    created_at: str

    @classmethod
    def of(cls, a: au.Authorisation) -> AuthOut:
        code = a.response_code
        return cls(approved=a.approved, response_code=code,
                   response_text=au.RESPONSE_CODES.get(code or ""), reason=a.reason,
                   state=a.state, terminal_id=a.terminal_id, batch_no=a.batch_no, stan=a.stan,
                   amount_fen=a.amount_fen, refunded_fen=a.refunded_fen,
                   auth_code=a.auth_code, arpc=a.arpc,
                   arc=code.encode().hex().upper() if a.arpc and code else None,
                   pan_masked=a.pan_masked, atc=a.atc, created_at=rfc3339(a.created_at))


class ReversalIn(BaseModel):
    batch_no: BatchNo
    stan: Stan
    amount_fen: int = Field(0, ge=0, le=10**12, description="as the terminal sent it")


class VoidIn(BaseModel):
    batch_no: BatchNo
    stan: Stan


class RefundIn(BaseModel):
    batch_no: BatchNo
    stan: Stan
    original_batch_no: BatchNo
    original_stan: Stan
    amount_fen: Fen


class RefundOut(BaseModel):
    terminal_id: str
    batch_no: int
    stan: str
    original_stan: str | None = None
    amount_fen: int
    transfer_id: str
    created_at: str


class TotalsIn(BaseModel):
    approved_count: int = Field(ge=0)
    approved_fen: int = Field(ge=0)
    reversed_count: int = Field(0, ge=0)
    reversed_fen: int = Field(0, ge=0)
    voided_count: int = Field(0, ge=0)
    voided_fen: int = Field(0, ge=0)
    refunded_count: int = Field(0, ge=0)
    refunded_fen: int = Field(0, ge=0)


class BatchCloseIn(BaseModel):
    batch_no: BatchNo
    totals: TotalsIn | None = None


class TotalsOut(TotalsIn):
    terminal_id: str
    batch_no: int
    state: str
    declined_count: int
    net_fen: int
    balanced: bool | None

    @classmethod
    def of(cls, t: tm.BatchTotals) -> TotalsOut:
        return cls(terminal_id=t.terminal_id, batch_no=t.batch_no, state=t.state,
                   declined_count=t.declined_count, net_fen=t.net_fen, balanced=t.balanced,
                   **t.counts())


class TerminalIn(BaseModel):
    merchant_code: str = Field(max_length=16, examples=["M100001"])
    store_code: str = Field(max_length=32, examples=["S1"])


class TerminalOut(BaseModel):
    terminal_id: str
    merchant_code: str
    store_id: int
    state: str
    deposit_fen: int
    batch_no: int
    batch_open: bool
    created_by: str
    created_at: str

    @classmethod
    def of(cls, t: tm.Terminal, merchant_code: str) -> TerminalOut:
        return cls(terminal_id=t.terminal_id, merchant_code=merchant_code, store_id=t.store_id,
                   state=t.state, deposit_fen=t.deposit_fen, batch_no=t.batch_no,
                   batch_open=t.batch_open, created_by=t.created_by,
                   created_at=rfc3339(t.created_at))


class TerminalCreatedOut(TerminalOut):
    terminal_key: str | None = Field(description="hex, 16 bytes: shown in this answer only")
    key_shown: bool


class TerminalPage(BaseModel):
    items: list[TerminalOut]


# -- the terminals' API -----------------------------------------------------------------------
terminal_router = APIRouter(prefix="/terminal", tags=["terminal"],
                            responses=problem_responses(401, 403, 409, 422))


@terminal_router.post("/sign-on", response_model=BatchOut, summary="Sign on: open a batch")
def sign_on(ctx: CtxDep, term: TermDep) -> BatchOut:
    return BatchOut.of(tm.sign_on(ctx, term))


@terminal_router.post("/authorisations", response_model=AuthOut,
                      summary="Online authorisation of a tap (ARQC in, ARPC out)")
@lean
async def authorise(request: Request, ctx: CtxDep, signed: SignedDep, body: AuthIn
                    ) -> AuthOut:
    """Taps arriving together are decided together, in one transaction (the ``nfc`` desk,
    ``onsite/authorise_batch.py``); each gets the answer it would alone. The message's
    nonce and the terminal's state are checked in that transaction too."""
    tap = ab.Tap(signed.terminal, au.AuthRequest(**body.model_dump()), signed)
    lane: Lane[ab.Tap, au.Authorisation] = Lane(
        "nfc", lambda taps: ab.authorise_batch(ctx, taps), keys=lambda t: (t.key,))
    answer = await desk_of(request.app.state).submit(lane, tap)
    return AuthOut.of(answer)


@terminal_router.post("/reversals", response_model=AuthOut,
                      summary="Reverse an authorisation the terminal got no answer to")
def reverse(ctx: CtxDep, term: TermDep, body: ReversalIn) -> AuthOut:
    return AuthOut.of(pr.reverse(ctx, term, body.batch_no, body.stan, body.amount_fen))


@terminal_router.post("/voids", response_model=AuthOut, summary="Void a purchase (same batch)")
def void(ctx: CtxDep, term: TermDep, body: VoidIn) -> AuthOut:
    return AuthOut.of(pr.reverse(ctx, term, body.batch_no, body.stan, 0, void=True))


@terminal_router.post("/refunds", response_model=RefundOut, summary="Refund a purchase")
def refund(ctx: CtxDep, term: TermDep, body: RefundIn) -> RefundOut:
    r = pr.refund(ctx, term, batch_no=body.batch_no, stan=body.stan,
                  original_batch_no=body.original_batch_no, original_stan=body.original_stan,
                  amount_fen=body.amount_fen)
    return RefundOut(terminal_id=r.terminal_id, batch_no=r.batch_no, stan=r.stan,
                     original_stan=body.original_stan, amount_fen=r.amount_fen,
                     transfer_id=r.transfer_id, created_at=rfc3339(r.created_at))


@terminal_router.post("/batch/close", response_model=TotalsOut,
                      summary="End of day: close the batch, compare totals")
def close_batch(ctx: CtxDep, term: TermDep, body: BatchCloseIn) -> TotalsOut:
    claimed = None if body.totals is None else body.totals.model_dump()
    return TotalsOut.of(tm.close_batch(ctx, term, body.batch_no, claimed))


# -- operators --------------------------------------------------------------------------------
operator_router = APIRouter(prefix="/operator/terminals", tags=["operator"],
                            dependencies=[Depends(require_operator)],
                            responses=problem_responses(401, 404, 409, 422))
TerminalId = Annotated[str, Path(pattern=r"^[Tt][0-9]{8}$")]


def _out(ctx: Context, t: tm.Terminal) -> TerminalOut:
    return TerminalOut.of(t, get_merchant(ctx, t.merchant_id).code)


def _actor(request: Request) -> str:
    op = getattr(request.state, "operator", None)
    return f"operator:{getattr(op, 'name', 'root')}"


@operator_router.post("", response_model=TerminalCreatedOut, status_code=201,
                      summary="Register a terminal to a merchant's store (takes the deposit)")
async def register(request: Request, body: TerminalIn, ctx: CtxDep,
                   idempotency_key: KeyHeader = None) -> Response:
    """The terminal key is in this answer only (a replay has ``terminal_key`` null). 409
    ``terminal_deposit_insufficient`` when the merchant's payable cannot cover the deposit."""
    actor = _actor(request)

    def run() -> TerminalCreatedOut:
        # The Idempotency-Key (up to 255 characters), hashed to a bounded request key.
        key = hashlib.sha256(str(idempotency_key).encode()).hexdigest()
        reg = tm.register_terminal(ctx, body.merchant_code, body.store_code, actor,
                                   request_key=f"api:{key}")
        out = _out(ctx, reg.terminal)
        return TerminalCreatedOut(**out.model_dump(), terminal_key=reg.key_hex, key_shown=True)

    return await idem.idempotent(
        request, ctx.engine, ctx.clock, "operator", idempotency_key, body, run,
        status_code=201,
        redact=lambda out: out.model_copy(update={"terminal_key": None, "key_shown": False}))


@operator_router.get("", response_model=TerminalPage, summary="Terminals, newest first")
def list_terminals(ctx: CtxDep, merchant_code: Annotated[str | None, Query(max_length=16)] = None,
                   state: Annotated[str | None, Query(max_length=10)] = None) -> TerminalPage:
    merchant_id = None
    if merchant_code is not None:
        m = find_by_code(ctx, merchant_code)
        if m is None:
            raise MerchantNotFoundError(f"no merchant {merchant_code}")
        merchant_id = m.id
    return TerminalPage(items=[_out(ctx, t) for t in tm.list_terminals(
        ctx, merchant_id=merchant_id, state=state)])


@operator_router.get("/{terminal_id}", response_model=TerminalOut, summary="A terminal")
def show(ctx: CtxDep, terminal_id: TerminalId) -> TerminalOut:
    return _out(ctx, tm.get_terminal(ctx, terminal_id))


def _state_route(action: str) -> Any:
    def change(request: Request, ctx: CtxDep, terminal_id: TerminalId) -> TerminalOut:
        return _out(ctx, tm.change_state(ctx, terminal_id, action, _actor(request)))

    change.__name__ = f"{action}_terminal"
    return change


for _action, _summary in (("suspend", "Suspend a terminal"), ("resume", "Resume a terminal"),
                          ("retire", "Retire a terminal (returns the deposit)")):
    operator_router.post(f"/{{terminal_id}}/{_action}", response_model=TerminalOut,
                         summary=_summary)(_state_route(_action))


@operator_router.get("/{terminal_id}/batches/{batch_no}", response_model=TotalsOut,
                     summary="A batch's totals")
def totals(ctx: CtxDep, terminal_id: TerminalId,
           batch_no: Annotated[int, Path(ge=1, le=999_999)]) -> TotalsOut:
    return TotalsOut.of(tm.batch_totals(ctx, tm.get_terminal(ctx, terminal_id), batch_no))


routers: list[APIRouter] = [terminal_router, operator_router]
