"""HTTP routes of payment orders, for the three callers:

- merchants (signed requests, ``docs/merchant-api.md``): ``/v1/payments`` create, query,
  close, refund;
- subscribers (Bearer token): ``/v1/wallet/payments`` their payment requests, confirm with
  PIN, escrow receipt and disputes;
- operators (``X-API-Key``): ``/v1/operator/payments`` and disputes (maker-checker).

Each caller sees only its own orders: another merchant's or subscriber's order is 404.
Every POST is idempotent through its business ids (``out_trade_no``, ``out_request_no``,
the order itself) and also accepts an ``Idempotency-Key`` for a stored replay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from paycell.api import idempotency as idem
from paycell.api.auth import require_operator
from paycell.api.deps import get_context
from paycell.api.desk import Lane, desk_of
from paycell.api.errors import problem_responses
from paycell.api.lean import lean
from paycell.context import Context
from paycell.errors import PaycellError
from paycell.funding.cash_common import decode_cursor, encode_cursor
from paycell.gateways.sms import commit_then_text
from paycell.merchants.auth import (
    SignedRequest,
    admit,
    admit_one,
    current_merchant,
    signed_request,
)
from paycell.merchants.model import Merchant
from paycell.merchants.service import get_merchant
from paycell.operators.model import Operator
from paycell.payments import confirmations, escrow, orders, paying, refunds, rules
from paycell.payments import schemas as sch
from paycell.payments.orders_batch import CreateCommand, create_in, record_codes
from paycell.payments.paying_batch import PayCommand, pay_batch
from paycell.subscribers.auth import current_subscriber
from paycell.subscribers.service import Subscriber

Ctx = Annotated[Context, Depends(get_context)]
MerchantDep = Annotated[Merchant, Depends(current_merchant)]
SignedDep = Annotated[SignedRequest, Depends(signed_request)]
Me = Annotated[Subscriber, Depends(current_subscriber)]
OperatorDep = Annotated[Operator, Depends(require_operator)]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key",
                                       description="optional: any unique string")]
TradeNo = Annotated[str, Path(pattern=r"^P[0-9a-f]{20}$", description="the platform's number")]
Cursor = Annotated[str | None, Query(max_length=100)]
Limit = Annotated[int, Query(ge=1, le=200)]
StateQ = Annotated[list[str] | None, Query(description="filter by state (repeatable)")]

merchant_router = APIRouter(prefix="/payments", tags=["merchant: payments"],
                            responses=problem_responses(401, 403, 404, 409, 422))
wallet_router = APIRouter(prefix="/wallet/payments", tags=["wallet: payments"],
                          responses=problem_responses(401, 403, 404, 409, 422))
operator_router = APIRouter(prefix="/operator", tags=["operator: payments"],
                            responses=problem_responses(401, 403, 404, 409, 422))
routers = [merchant_router, wallet_router, operator_router]


async def _run(request: Request, ctx: Context, caller: str, key: str | None, body: Any,
               run: Callable[[], Any], status_code: int = 200) -> Response:
    """With an Idempotency-Key: stored and replayed. Without: the use case's own
    idempotency (business ids) is enough."""
    if key is not None:
        return await idem.idempotent(request, ctx.engine, ctx.clock, caller, key, body, run,
                                     status_code=status_code)
    result = await run_in_threadpool(run)
    return JSONResponse(jsonable_encoder(result), status_code=status_code)


def _out(ctx: Context, order: orders.Order) -> sch.OrderOut:
    """The order with its merchant's code and name (whom the subscriber is paying)."""
    return sch.OrderOut.of(order, get_merchant(ctx, order.merchant_id))


def _page(ctx: Context, items: list[orders.Order], limit: int) -> sch.OrderPage:
    nxt = encode_cursor("order", items[-1].id) if len(items) == limit else None
    return sch.OrderPage(items=[_out(ctx, o) for o in items], next_cursor=nxt)


def _states(state: list[str] | None) -> tuple[str, ...]:
    bad = [s for s in state or [] if s not in rules.STATES]
    if bad:
        from paycell.payments.errors import PaymentInvalidError

        raise PaymentInvalidError(f"unknown state {bad[0]!r}; one of {', '.join(rules.STATES)}",
                                  field="state")
    return tuple(state or ())


# -- merchants -----------------------------------------------------------------------------
@merchant_router.post("", response_model=sch.OrderOut, status_code=201,
                      summary="Ask a subscriber to pay (remote payment)")
@lean
async def create_payment(request: Request, body: sch.PaymentCreateIn, ctx: Ctx,
                         signed: SignedDep, key: IdemKey = None) -> Response:
    """The subscriber is asked in the app and by SMS (a code to reply). 201 with the new
    order; 200 with the same order when ``out_trade_no`` comes again with the same request.
    409 ``out_trade_no_conflict`` (``field``) for a different one; 422 ``payer_not_found``,
    ``payment_invalid``."""
    req = orders.OrderRequest(**body.model_dump())
    if key is not None:  # requests arriving together are created together (orders_batch.py)
        path = request.url.path
        claim = idem.Claim(f"merchant:{signed.merchant.id}", idem.check_key(key),
                           idem.request_hash(request.method, path, body.model_dump()), path,
                           201)
        lane: Lane[tuple[idem.Claim, SignedRequest, orders.OrderRequest], idem.Reply] = Lane(
            "order-create", lambda items: _create_many(ctx, items),
            keys=lambda item: (item[0].id, (item[1].merchant.id, item[2].out_trade_no)))
        reply: idem.Reply = await desk_of(request.app.state).submit(lane, (claim, signed, req))
        return reply.response()
    merchant = await run_in_threadpool(admit_one, ctx, signed)
    created: list[bool] = []

    def run() -> sch.OrderOut:
        order, new = orders.create_order(ctx, merchant, req)
        created.append(new)
        return _out(ctx, order)

    resp = await _run(request, ctx, f"merchant:{merchant.id}", key, body.model_dump(), run,
                      status_code=201)
    if created and not created[0] and key is None:
        resp.status_code = 200
    return resp


def _create_many(ctx: Context,
                 items: list[tuple[idem.Claim, SignedRequest, orders.OrderRequest]]
                 ) -> list[idem.Reply | PaycellError]:
    """The order-create lane, in one transaction: the requests' nonces, keys and merchants
    first, then the orders of those admitted and the texts of their codes."""

    def work(conn: Connection) -> tuple[list[idem.Reply | PaycellError], Callable[[], None]]:
        admitted = admit(conn, [signed for _, signed, _ in items], ctx.clock.now_us())
        todo = [(i, (claim, CreateCommand(m, req)))
                for i, ((claim, _, req), m) in enumerate(zip(items, admitted, strict=True))
                if isinstance(m, Merchant)]
        out: list[idem.Reply | PaycellError] = [
            m if isinstance(m, PaycellError) else idem.Reply(0, "") for m in admitted]
        texts: list[Callable[[], None]] = []  # run_keyed creates the orders once

        def create(cmds: list[CreateCommand], ahead: Any, after: Any) -> None:
            done = create_in(ctx, conn, cmds, ahead=ahead, after=after)
            texts.append(record_codes(ctx, conn, cmds, done))

        def dispatch() -> None:
            for send in texts:
                send()

        replies = idem.run_keyed(
            ctx.clock, [item for _, item in todo], create,
            lambda cmd, made: sch.OrderOut.of(made.unwrap()[0], cmd.merchant)) if todo else []
        for (i, _), reply in zip(todo, replies, strict=True):
            out[i] = reply
        return out, dispatch

    return commit_then_text(ctx.ledger, work)


@merchant_router.get("", response_model=sch.OrderPage, summary="My orders")
def list_payments(ctx: Ctx, merchant: MerchantDep, out_trade_no: str | None = Query(None),
                  state: StateQ = None, cursor: Cursor = None,
                  limit: Limit = 50) -> sch.OrderPage:
    """Newest first. ``out_trade_no`` finds one order by your own number."""
    if out_trade_no is not None:
        return sch.OrderPage(items=[_out(ctx, orders.merchant_order(
            ctx, merchant.id, out_trade_no=out_trade_no))], next_cursor=None)
    items = orders.list_orders(ctx, merchant_id=merchant.id, states=_states(state),
                               before_id=decode_cursor("order", cursor), limit=limit)
    return _page(ctx, items, limit)


@merchant_router.get("/{trade_no}", response_model=sch.OrderDetailOut, summary="One order")
def get_payment(trade_no: TradeNo, ctx: Ctx, merchant: MerchantDep) -> sch.OrderDetailOut:
    order = orders.merchant_order(ctx, merchant.id, trade_no=trade_no)
    return _detail(ctx, order)


def _detail(ctx: Context, order: orders.Order) -> sch.OrderDetailOut:
    return sch.OrderDetailOut(
        order=_out(ctx, order),
        events=[sch.EventOut.of(e) for e in orders.events_of(ctx, order.id)],
        refunds=[sch.RefundOut.of(r) for r in refunds.refunds_of(ctx, order.id)])


@merchant_router.post("/{trade_no}/close", response_model=sch.OrderOut,
                      summary="Close an unpaid order")
async def close_payment(request: Request, trade_no: TradeNo, ctx: Ctx, merchant: MerchantDep,
                        key: IdemKey = None) -> Response:
    """It can no longer be paid. Closing a closed order answers it; 409
    ``order_state_invalid`` once paid."""
    return await _run(request, ctx, f"merchant:{merchant.id}", key, {},
                      lambda: _out(ctx, orders.close_order(ctx, merchant, trade_no)))


@merchant_router.post("/{trade_no}/refunds", response_model=sch.RefundResultOut,
                      summary="Refund some or all of a paid order")
async def refund_payment(request: Request, trade_no: TradeNo, body: sch.RefundIn, ctx: Ctx,
                         merchant: MerchantDep, key: IdemKey = None) -> Response:
    """To the payer's wallet at once. Idempotent per ``out_request_no``. 409
    ``refund_exceeds_paid`` (``refundable_fen``), ``escrow_partial_refund``,
    ``out_request_no_conflict``, ``merchant_balance_insufficient``, ``order_state_invalid``."""
    def run() -> sch.RefundResultOut:
        refund, order = refunds.refund_order(
            ctx, merchant, trade_no=trade_no, out_request_no=body.out_request_no,
            amount_fen=body.amount_fen, reason=body.reason)
        return sch.RefundResultOut(refund=sch.RefundOut.of(refund), order=_out(ctx, order))

    return await _run(request, ctx, f"merchant:{merchant.id}", key, body.model_dump(), run)


@merchant_router.get("/{trade_no}/refunds", response_model=sch.RefundList,
                     summary="An order's refunds")
def list_refunds(trade_no: TradeNo, ctx: Ctx, merchant: MerchantDep) -> sch.RefundList:
    order = orders.merchant_order(ctx, merchant.id, trade_no=trade_no)
    return sch.RefundList(items=[sch.RefundOut.of(r) for r in refunds.refunds_of(ctx, order.id)])


# -- subscribers ---------------------------------------------------------------------------
@wallet_router.get("/requests", response_model=sch.OrderPage,
                   summary="Payment requests waiting for me")
def pending_requests(ctx: Ctx, me: Me) -> sch.OrderPage:
    """Orders merchants asked this wallet to pay that can still be paid, newest first."""
    now = ctx.clock.now_us()
    items = [o for o in orders.list_orders(ctx, payer_subscriber_id=me.id,
                                           states=(rules.WAITING,), limit=200)
             if o.expires_at > now]
    return sch.OrderPage(items=[_out(ctx, o) for o in items], next_cursor=None)


@wallet_router.get("", response_model=sch.OrderPage, summary="My payments")
def my_payments(ctx: Ctx, me: Me, state: StateQ = None, cursor: Cursor = None,
                limit: Limit = 50) -> sch.OrderPage:
    items = orders.list_orders(ctx, payer_subscriber_id=me.id, states=_states(state),
                               before_id=decode_cursor("order", cursor), limit=limit)
    return _page(ctx, items, limit)


@wallet_router.get("/{trade_no}", response_model=sch.OrderDetailOut, summary="One payment")
def my_payment(trade_no: TradeNo, ctx: Ctx, me: Me) -> sch.OrderDetailOut:
    return _detail(ctx, paying.payer_order(ctx, me, trade_no))


@wallet_router.post("/{trade_no}/confirm", response_model=sch.OrderOut,
                    summary="Pay a payment request with the PIN")
@lean
async def confirm(request: Request, trade_no: TradeNo, body: sch.ConfirmIn, ctx: Ctx, me: Me,
                  key: IdemKey = None) -> Response:
    """From the balance, a bound card or the phone bill. The answer is the order: paid or
    held (escrow), or still waiting with ``funding_pending`` while the bank answers. 403
    ``pin_invalid``/``pin_locked``; 409 ``insufficient_balance``, ``order_expired``,
    ``order_state_invalid``, ``limit_exceeded``, ``funding_failed``."""
    fingerprint = {**body.model_dump(exclude={"pin"}), "pin": "*"}
    if key is None or body.source != "wallet":
        return await _run(request, ctx, f"subscriber:{me.id}", key, fingerprint,
                          lambda: _out(ctx, paying.confirm_order(
                              ctx, me, trade_no, body.pin, source=body.source,
                              card_id=body.card_id)))
    # From the balance: confirmations arriving together are paid together (the ``orders``
    # desk, payments/paying_batch.py), each answered as it would be alone.
    path = request.url.path
    claim = idem.Claim(f"subscriber:{me.id}", idem.check_key(key),
                       idem.request_hash(request.method, path, fingerprint), path)
    lane: Lane[tuple[idem.Claim, PayCommand], idem.Reply] = Lane(
        "orders", lambda items: _confirm_many(ctx, items), keys=lambda item: (item[0].id,))
    reply: idem.Reply = await desk_of(request.app.state).submit(
        lane, (claim, PayCommand(me, trade_no, body.pin)))
    return reply.response()


def _confirm_many(ctx: Context, items: list[tuple[idem.Claim, PayCommand]]
                  ) -> list[idem.Reply]:
    return idem.run_keyed(
        ctx.clock, items,
        lambda cmds, ahead, after: pay_batch(ctx, cmds, ahead=ahead, after=after),
        lambda _cmd, paid: sch.OrderOut.of(paid.unwrap(), paid.merchant))


@wallet_router.post("/{trade_no}/sms-code", status_code=204, response_class=Response,
                    summary="Text me a new confirmation code")
def resend_code(trade_no: TradeNo, ctx: Ctx, me: Me) -> Response:
    order = paying.payer_order(ctx, me, trade_no)
    rules.next_state(order.state, rules.pay_action(order.kind))
    if confirmations.sent_last_hour(ctx, me.msisdn) < 2 * ctx.settings.sms_codes_per_hour:
        confirmations.resend_order_code(ctx, order, get_merchant(ctx, order.merchant_id))
    return Response(status_code=204)


@wallet_router.post("/{trade_no}/receipt", response_model=sch.OrderOut,
                    summary="Escrow: I received the goods (release the money)")
async def confirm_receipt(request: Request, trade_no: TradeNo, body: sch.PinIn, ctx: Ctx,
                          me: Me, key: IdemKey = None) -> Response:
    return await _run(request, ctx, f"subscriber:{me.id}", key, {"pin": "*"},
                      lambda: _out(ctx, escrow.confirm_receipt(ctx, me, trade_no,
                                                                     body.pin)))


@wallet_router.post("/{trade_no}/dispute", response_model=sch.DisputeOut, status_code=201,
                    summary="Escrow: dispute before release")
async def open_dispute(request: Request, trade_no: TradeNo, body: sch.DisputeIn, ctx: Ctx,
                       me: Me, key: IdemKey = None) -> Response:
    """The money stays held (no auto-release) until an operator decides."""
    return await _run(request, ctx, f"subscriber:{me.id}", key, body.model_dump(),
                      lambda: sch.DisputeOut.of(escrow.open_dispute(ctx, me, trade_no,
                                                                    body.reason), trade_no),
                      status_code=201)


# -- operators -----------------------------------------------------------------------------
@operator_router.get("/payments", response_model=sch.OrderPage, summary="Orders")
def op_list(ctx: Ctx, _op: OperatorDep, merchant_id: int | None = Query(None),
            state: StateQ = None, cursor: Cursor = None, limit: Limit = 50) -> sch.OrderPage:
    items = orders.list_orders(ctx, merchant_id=merchant_id, states=_states(state),
                               before_id=decode_cursor("order", cursor), limit=limit)
    return _page(ctx, items, limit)


@operator_router.get("/payments/{trade_no}", response_model=sch.OrderDetailOut,
                     summary="One order with its history")
def op_get(trade_no: TradeNo, ctx: Ctx, _op: OperatorDep) -> sch.OrderDetailOut:
    return _detail(ctx, orders.get_order(ctx, trade_no))


def _dispute_out(ctx: Context, d: escrow.Dispute) -> sch.DisputeOut:
    return sch.DisputeOut.of(d, escrow.get_order_by_id(ctx, d.order_id).trade_no)


@operator_router.get("/disputes", response_model=sch.DisputeList, summary="Escrow disputes")
def op_disputes(ctx: Ctx, _op: OperatorDep,
                state: str | None = Query("open", pattern="^(open|resolved)$")
                ) -> sch.DisputeList:
    return sch.DisputeList(items=[_dispute_out(ctx, d)
                                  for d in escrow.list_disputes(ctx, state)])


@operator_router.post("/disputes/{dispute_id}/resolution", status_code=202,
                      summary="Propose a dispute decision (a second operator approves)")
async def op_propose(request: Request, body: sch.ResolutionIn, ctx: Ctx, op: OperatorDep,
                     dispute_id: int = Path(ge=1, le=2**62), key: IdemKey = None) -> Response:
    """Answers the approval waiting for a second operator
    (``POST /v1/approvals/{id}/approve`` carries the decision out)."""
    def run() -> dict[str, Any]:
        a = escrow.propose_resolution(ctx, op, dispute_id, body.outcome, body.buyer_fen,
                                      body.note)
        return {"approval_id": a.id, "action": a.action, "subject": a.subject,
                "payload": a.payload, "state": a.state, "proposed_by": a.proposed_by_name,
                "approve_at": f"/v1/approvals/{a.id}/approve"}

    return await _run(request, ctx, f"operator:{op.id}", key, body.model_dump(), run,
                      status_code=202)
