"""HTTP routes for bank cards, top-ups and withdrawals (``/v1/wallet``, Bearer token), and
the operators' view of operations waiting for a bank or carrier (``/v1/operator/funding``).

Every POST takes an Idempotency-Key; the use cases derive their record ids from it, so a
retry after a crash finds the first attempt's record. Card numbers, codes and PINs enter
the stored idempotency fingerprint only as keyed MACs.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response

from paycell.api.auth import require_operator
from paycell.api.deps import get_context
from paycell.api.errors import problem_responses
from paycell.api.idempotency import check_key, idempotent
from paycell.context import Context
from paycell.funding import cards, jobs, topups, withdrawals
from paycell.funding import schemas as sch
from paycell.funding.fees import FeeRule, withdrawal_fee
from paycell.subscribers.auth import current_subscriber
from paycell.subscribers.service import Subscriber

Ctx = Annotated[Context, Depends(get_context)]
Me = Annotated[Subscriber, Depends(current_subscriber)]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key",
                                       description="a fresh UUID per operation")]
CardId = Annotated[str, Path(min_length=1, max_length=32)]
RecordId = Annotated[str, Path(min_length=1, max_length=32)]
Cursor = Annotated[str | None, Query(max_length=200)]
Limit = Annotated[int, Query(ge=1, le=100)]

wallet = APIRouter(prefix="/wallet", tags=["wallet: funding"],
                   responses=problem_responses(401, 404, 409, 422, 503))
operator = APIRouter(prefix="/operator/funding", tags=["operator: funding"],
                     dependencies=[Depends(require_operator)],
                     responses=problem_responses(401, 422))


def _mac(ctx: Context, what: str, secret: str) -> str:
    """A secret as it may enter the idempotency fingerprint: keyed, never in clear."""
    return hmac.new(ctx.settings.secret_key.encode(), f"funding:{what}:{secret}".encode(),
                    hashlib.sha256).hexdigest()


def _caller(me: Subscriber) -> str:
    return f"subscriber:{me.id}"


# -- cards ---------------------------------------------------------------------------------
@wallet.post("/cards", status_code=201, response_model=sch.CardOut, summary="Bind a bank card")
async def add_card(request: Request, body: sch.CardIn, me: Me, ctx: Ctx,
                   key: IdemKey = None) -> Response:
    """The bank texts a code to your number; confirm with it
    (``POST /v1/wallet/cards/{id}/confirm``). 409 ``card_rejected`` (``reason``), 422
    ``card_number_invalid``, 503 ``bank_unavailable``."""
    key = check_key(key)
    fp = {"card_number": _mac(ctx, "pan", "".join(body.card_number.split()))}
    return await idempotent(request, ctx.engine, ctx.clock, _caller(me), key, fp,
                            lambda: sch.CardOut.of(cards.add_card(ctx, me, body.card_number,
                                                                  key=key)),
                            status_code=201)


@wallet.get("/cards", response_model=sch.CardList, summary="My bank cards")
def list_cards(me: Me, ctx: Ctx) -> sch.CardList:
    """Cards being verified or bound, oldest first; one is the default."""
    return sch.CardList(items=[sch.CardOut.of(c) for c in cards.list_cards(ctx, me.id)])


@wallet.get("/cards/{card_id}", response_model=sch.CardOut, summary="One of my cards")
def get_card(card_id: CardId, me: Me, ctx: Ctx) -> sch.CardOut:
    return sch.CardOut.of(cards.get_card(ctx, me.id, card_id))


@wallet.post("/cards/{card_id}/confirm", response_model=sch.CardOut,
             summary="Confirm a card with the bank's SMS code")
async def confirm_card(request: Request, card_id: CardId, body: sch.CardConfirmIn, me: Me,
                       ctx: Ctx, key: IdemKey = None) -> Response:
    """The first card bound becomes the default. 422 ``card_code_invalid``
    (``tries_left``); 409 ``card_rejected`` (too many wrong codes: bind again)."""
    return await idempotent(request, ctx.engine, ctx.clock, _caller(me), key,
                            {"code": _mac(ctx, f"code:{card_id}", body.code)},
                            lambda: sch.CardOut.of(cards.confirm_card(ctx, me, card_id,
                                                                      body.code)))


@wallet.post("/cards/{card_id}/default", response_model=sch.CardOut,
             summary="Make a card the default")
async def set_default(request: Request, card_id: CardId, me: Me, ctx: Ctx,
                      key: IdemKey = None) -> Response:
    return await idempotent(request, ctx.engine, ctx.clock, _caller(me), key, {},
                            lambda: sch.CardOut.of(cards.set_default(ctx, me, card_id)))


@wallet.delete("/cards/{card_id}", response_model=sch.CardOut, summary="Unbind a card")
def remove_card(card_id: CardId, me: Me, ctx: Ctx) -> sch.CardOut:
    """The token is forgotten; if it was the default, the latest other card becomes it."""
    return sch.CardOut.of(cards.remove_card(ctx, me, card_id))


# -- top-ups -------------------------------------------------------------------------------
@wallet.post("/topups", status_code=201, response_model=sch.TopupOut, summary="Top up (充值)")
async def create_topup(request: Request, body: sch.TopupIn, me: Me, ctx: Ctx,
                       key: IdemKey = None) -> Response:
    """From a bound card (``source: card``) or charged to your phone bill
    (``phone_bill``). The answer is the top-up with ``state`` confirmed, failed (the
    partner's ``reason``; nothing credited) or pending (the bank has not answered yet:
    look again later). 409 ``balance_cap_exceeded``, ``phone_bill_cap_exceeded``,
    ``card_state_invalid``; 404 ``card_not_found``; 422 ``no_default_card``."""
    key = check_key(key)

    def run() -> sch.TopupOut:
        if body.source == "card":
            return sch.TopupOut.of(topups.topup_from_card(
                ctx, me, body.amount_fen, card_id=body.card_id, currency=body.currency,
                key=key))
        return sch.TopupOut.of(topups.topup_by_phone_bill(ctx, me, body.amount_fen,
                                                          currency=body.currency, key=key))

    return await idempotent(request, ctx.engine, ctx.clock, _caller(me), key,
                            body.model_dump(), run, status_code=201)


@wallet.get("/topups", response_model=sch.TopupPage, summary="My top-ups")
def list_topups(me: Me, ctx: Ctx, cursor: Cursor = None, limit: Limit = 20) -> sch.TopupPage:
    """Newest first; pass ``next_cursor`` back as ``cursor`` until it is null."""
    items, nxt = topups.list_topups(ctx, me.id, cursor=cursor, limit=limit)
    return sch.TopupPage(items=[sch.TopupOut.of(t) for t in items], next_cursor=nxt,
                         phone_bill_used_fen=topups.phone_bill_used(ctx, me.id),
                         phone_bill_cap_fen=ctx.settings.phone_bill_monthly_cap_fen)


@wallet.get("/topups/{topup_id}", response_model=sch.TopupOut, summary="One top-up")
def get_topup(topup_id: RecordId, me: Me, ctx: Ctx) -> sch.TopupOut:
    return sch.TopupOut.of(topups.get_topup(ctx, me.id, topup_id))


# -- withdrawals ---------------------------------------------------------------------------
@wallet.get("/withdrawals/fee", response_model=sch.FeeQuoteOut,
            summary="What a withdrawal would cost")
def quote_fee(ctx: Ctx, _me: Me,
              amount_fen: Annotated[int, Query(gt=0, le=sch.MAX_FEN)]) -> sch.FeeQuoteOut:
    fee = withdrawal_fee(amount_fen, FeeRule.from_settings(ctx.settings))
    return sch.FeeQuoteOut(amount_fen=amount_fen, fee_fen=fee, total_fen=amount_fen + fee)


@wallet.post("/withdrawals", status_code=201, response_model=sch.WithdrawalOut,
             summary="Withdraw to a bound card (提现)")
async def create_withdrawal(request: Request, body: sch.WithdrawalIn, me: Me, ctx: Ctx,
                            key: IdemKey = None) -> Response:
    """PIN required; the fee comes on top of the amount. ``state`` confirmed, failed (the
    bank's ``reason``; everything released) or pending. 403 ``pin_invalid`` /
    ``pin_locked``; 409 ``insufficient_balance``, ``limit_exceeded``,
    ``subscriber_frozen``; 422 ``no_default_card``."""
    key = check_key(key)
    fp = {**body.model_dump(exclude={"pin"}), "pin": _mac(ctx, f"pin:{me.id}", body.pin)}
    return await idempotent(
        request, ctx.engine, ctx.clock, _caller(me), key, fp,
        lambda: sch.WithdrawalOut.of(withdrawals.request_withdrawal(
            ctx, me, body.amount_fen, body.pin, card_id=body.card_id, currency=body.currency,
            key=key)), status_code=201)


@wallet.get("/withdrawals", response_model=sch.WithdrawalPage, summary="My withdrawals")
def list_withdrawals(me: Me, ctx: Ctx, cursor: Cursor = None, limit: Limit = 20
                     ) -> sch.WithdrawalPage:
    items, nxt = withdrawals.list_withdrawals(ctx, me.id, cursor=cursor, limit=limit)
    return sch.WithdrawalPage(items=[sch.WithdrawalOut.of(w) for w in items], next_cursor=nxt)


@wallet.get("/withdrawals/{withdrawal_id}", response_model=sch.WithdrawalOut,
            summary="One withdrawal")
def get_withdrawal(withdrawal_id: RecordId, me: Me, ctx: Ctx) -> sch.WithdrawalOut:
    return sch.WithdrawalOut.of(withdrawals.get_withdrawal(ctx, me.id, withdrawal_id))


# -- operators -----------------------------------------------------------------------------
@operator.get("/pending", response_model=sch.PendingList,
              summary="Top-ups and withdrawals waiting for the bank or carrier")
def pending(ctx: Ctx) -> sch.PendingList:
    return sch.PendingList(items=[sch.PendingOut.of(p) for p in jobs.pending_operations(ctx)])


@operator.post("/resolve", response_model=sch.ResolvedOut,
               summary="Ask the partners about every pending operation now")
async def resolve(request: Request, ctx: Ctx, key: IdemKey = None) -> Response:
    """Runs the status-query job once over all pending operations (not only the due ones)."""
    def run() -> sch.ResolvedOut:
        settled = jobs.resolve_pending(ctx, force=True)
        return sch.ResolvedOut(settled=settled, still_pending=len(jobs.pending_operations(ctx)))

    return await idempotent(request, ctx.engine, ctx.clock, "operator", key, {}, run)


routers: list[APIRouter] = [wallet, operator]
