"""The wallet app's account endpoints (``/v1/wallet``) and the operators' subscriber
look-up and freeze (``/v1/operator/subscribers``).

Wallet endpoints take the subscriber from the Bearer token, never from the URL, so each
subscriber sees only their own wallet. Every POST needs an ``Idempotency-Key``; PINs,
codes and ID numbers enter the idempotency fingerprint only as keyed MACs.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import inspect
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from paycell.api.auth import require_operator
from paycell.api.deps import get_context
from paycell.api.errors import problem_responses
from paycell.api.idempotency import check_key, idempotent
from paycell.api.params import MAX_ID
from paycell.clock import rfc3339, to_us
from paycell.context import Context
from paycell.errors import InvalidRequestError
from paycell.subscribers import codes, lifecycle, statement, tokens
from paycell.subscribers.auth import current_session, current_subscriber
from paycell.subscribers.errors import InvalidMsisdnError
from paycell.subscribers.schemas import (
    BalanceOut,
    CloseIn,
    Done,
    EventOut,
    KycIn,
    LoginIn,
    PinChangeIn,
    PinResetConfirmIn,
    PinResetIn,
    ReasonIn,
    RefreshIn,
    SignupIn,
    StatementLineOut,
    StatementPage,
    SubscriberAdminOut,
    SubscriberList,
    SubscriberOut,
    TokensOut,
)
from paycell.subscribers.service import (
    Subscriber,
    change_pin,
    history_by_msisdn,
    normalise_msisdn,
    open_account,
    verify_pin,
)
from paycell.subscribers.tokens import SessionInfo

wallet = APIRouter(prefix="/wallet", tags=["wallet"],
                   responses=problem_responses(401, 403, 409, 422))
operator = APIRouter(prefix="/operator/subscribers", tags=["operator: subscribers"],
                     dependencies=[Depends(require_operator)],
                     responses=problem_responses(401, 404, 409, 422))
Ctx = Annotated[Context, Depends(get_context)]
Me = Annotated[Subscriber, Depends(current_subscriber)]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key",
                                       description="a fresh UUID per operation")]
SubscriberId = Annotated[int, Path(ge=1, le=MAX_ID)]


class StatementRangeInvalidError(InvalidRequestError):
    code = "statement_range_invalid"


def _mac(ctx: Context, secret: str | None) -> str | None:
    """A PIN or code as it may enter the idempotency fingerprint: keyed, never in clear."""
    if secret is None:
        return None
    return hmac.new(ctx.settings.secret_key.encode(), f"fp:{secret}".encode(),
                    hashlib.sha256).hexdigest()


def _scope(msisdn: str) -> str:
    """The idempotency scope of an anonymous request about a number."""
    try:
        return normalise_msisdn(msisdn)
    except InvalidMsisdnError:
        return hashlib.sha256(msisdn.encode()).hexdigest()[:20]


def _tokens(pair: tokens.TokenPair, replayed: bool, now: int) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(TokensOut.of(pair, now).model_dump(), headers=headers)


# -- wallet: sessions ------------------------------------------------------------------------
@wallet.post("/signup", status_code=201, response_model=SubscriberOut,
             summary="Open a wallet (开户)")
async def signup(request: Request, body: SignupIn, ctx: Ctx, key: IdemKey = None) -> Response:
    """Open a wallet by MSISDN with a six-digit PIN; with a name and an ID-document number
    it starts at tier 1. Log in afterwards."""
    fp = {**body.model_dump(), "pin": _mac(ctx, body.pin), "id_number": _mac(ctx,
                                                                              body.id_number)}
    return await idempotent(
        request, ctx.engine, ctx.clock, f"signup:{_scope(body.msisdn)}", key, fp,
        lambda: SubscriberOut.of(open_account(ctx, body.msisdn, body.pin, name=body.name,
                                              id_number=body.id_number)), status_code=201)


@wallet.post("/login", response_model=TokensOut, summary="Log in: MSISDN + PIN")
async def login(body: LoginIn, ctx: Ctx, key: IdemKey = None) -> JSONResponse:
    """An access token (15 min) and a refresh token (30 days). Wrong PINs count towards the
    lock (5 in a row: 30 min). A retry with the same key renews the same session's tokens."""
    key = check_key(key)
    pair, replayed = await run_in_threadpool(tokens.login, ctx, body.msisdn, body.pin, key)
    return _tokens(pair, replayed, ctx.clock.now_us())


@wallet.post("/token/refresh", response_model=TokensOut, summary="Rotate the tokens")
async def refresh(body: RefreshIn, ctx: Ctx, key: IdemKey = None) -> JSONResponse:
    """New access and refresh tokens; the ones presented stop working."""
    key = check_key(key)
    pair, replayed = await run_in_threadpool(tokens.refresh, ctx, body.refresh_token, key)
    return _tokens(pair, replayed, ctx.clock.now_us())


@wallet.post("/logout", response_model=Done, summary="Log out (revoke this session)")
async def logout(request: Request, ctx: Ctx,
                 session: Annotated[SessionInfo, Depends(current_session)],
                 key: IdemKey = None) -> Response:
    def run() -> Done:
        tokens.logout(ctx, session.session_id)
        return Done(status="logged_out")

    return await idempotent(request, ctx.engine, ctx.clock,
                            f"subscriber:{session.subscriber.id}", key, {}, run)


# -- wallet: balance and statement -----------------------------------------------------------
@wallet.get("", response_model=BalanceOut, summary="Balance, tier and limits")
def get_balance(me: Me, ctx: Ctx) -> BalanceOut:
    """Posted and available balance, holds in and out, the tier's limits and what is left
    of them today and this month (China Standard Time)."""
    return BalanceOut.of(statement.balance(ctx, me))


@wallet.get("/statement", response_model=StatementPage, summary="The wallet's statement")
def get_statement(
    me: Me, ctx: Ctx,
    type: Annotated[list[str] | None, Query(description="friendly types, e.g. p2p")] = None,
    since: Annotated[datetime | None, Query(alias="from", description="RFC 3339, inclusive")
                     ] = None,
    until: Annotated[datetime | None, Query(alias="to", description="RFC 3339, exclusive")
                     ] = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> StatementPage:
    """Newest first; pass ``next_cursor`` back as ``cursor`` until it is null."""
    bounds = []
    for when in (since, until):
        if when is not None and when.tzinfo is None:
            raise StatementRangeInvalidError("give times with a zone, e.g. 2026-01-31T16:00Z")
        bounds.append(None if when is None else to_us(when))
    if bounds[0] is not None and bounds[1] is not None and bounds[0] > bounds[1]:
        raise StatementRangeInvalidError("'from' is after 'to'")
    lines, nxt = statement.statement(ctx, me, types=type, since_us=bounds[0],
                                     until_us=bounds[1], cursor=cursor, limit=limit)
    return StatementPage(items=[StatementLineOut.of(x) for x in lines], next_cursor=nxt)


# -- wallet: PIN, KYC, close -----------------------------------------------------------------
@wallet.post("/pin", response_model=Done, summary="Change the PIN")
async def pin_change(request: Request, body: PinChangeIn, me: Me, ctx: Ctx,
                     key: IdemKey = None) -> Response:
    """Every session ends, this one included: log in again with the new PIN."""
    def run() -> Done:
        change_pin(ctx, me.id, body.old_pin, body.new_pin)
        return Done(status="pin_changed", detail="log in again with the new PIN")

    fp = {"old_pin": _mac(ctx, body.old_pin), "new_pin": _mac(ctx, body.new_pin)}
    return await idempotent(request, ctx.engine, ctx.clock, f"subscriber:{me.id}", key, fp,
                            run)


@wallet.post("/pin/reset", status_code=202, response_model=Done,
             summary="Forgotten PIN: text a code")
async def pin_reset(request: Request, body: PinResetIn, ctx: Ctx,
                    key: IdemKey = None) -> Response:
    """Always 202, whether or not the number has a wallet."""
    def run() -> Done:
        codes.request_pin_reset(ctx, body.msisdn)
        return Done(status="accepted",
                    detail="if this number has a wallet, a code is on its way by SMS")

    return await idempotent(request, ctx.engine, ctx.clock, f"pin-reset:{_scope(body.msisdn)}",
                            key, body.model_dump(), run, status_code=202)


@wallet.post("/pin/reset/confirm", response_model=Done, summary="Set a new PIN with the code")
async def pin_reset_confirm(request: Request, body: PinResetConfirmIn, ctx: Ctx,
                            key: IdemKey = None) -> Response:
    """Clears the PIN lock; every session ends."""
    def run() -> Done:
        codes.confirm_pin_reset(ctx, body.msisdn, body.code, body.new_pin)
        return Done(status="pin_reset", detail="log in with the new PIN")

    fp = {"msisdn": body.msisdn, "code": _mac(ctx, body.code), "new_pin": _mac(ctx,
                                                                              body.new_pin)}
    return await idempotent(request, ctx.engine, ctx.clock, f"pin-reset:{_scope(body.msisdn)}",
                            key, fp, run)


@wallet.post("/kyc", response_model=SubscriberOut, summary="Upgrade to tier 1 (named)")
async def kyc(request: Request, body: KycIn, me: Me, ctx: Ctx, key: IdemKey = None) -> Response:
    """Name and ID-document number; only a keyed hash and the last four are kept."""
    fp = {"name": body.name, "id_number": _mac(ctx, body.id_number)}
    return await idempotent(
        request, ctx.engine, ctx.clock, f"subscriber:{me.id}", key, fp,
        lambda: SubscriberOut.of(lifecycle.upgrade_kyc(ctx, me.id, body.name, body.id_number)))


class ClosedOut(SubscriberOut):
    balance_fen: int
    paid_to: str | None
    reference: str | None


def card_payout(ctx: Context) -> lifecycle.Payout | None:
    """Funding's payout to the default bank card, if that package provides one:
    ``paycell.funding.withdrawals.close_payout(ctx, subscriber[, amount_fen]) -> str | None``
    (None: no card bound, so the balance is held for collection)."""
    try:
        close_payout = importlib.import_module("paycell.funding.withdrawals").close_payout
    except (ImportError, AttributeError):
        return None
    takes_amount = len(inspect.signature(close_payout).parameters) >= 3

    def payout(sub: Subscriber, amount_fen: int) -> str | None:
        ref = close_payout(ctx, sub, amount_fen) if takes_amount else close_payout(ctx, sub)
        return None if ref is None else str(ref)

    return payout


@wallet.post("/close", response_model=ClosedOut, summary="Close the wallet (销户)")
async def close(request: Request, body: CloseIn, me: Me, ctx: Ctx,
                key: IdemKey = None) -> Response:
    """PIN required. Refused while money is held (``account_has_pending_holds``). What is
    left goes to the default bank card if one is bound, otherwise it is held for
    collection. Every session ends; the number may later be opened by someone else."""
    def run() -> ClosedOut:
        verify_pin(ctx, me.id, body.pin)
        done = lifecycle.close_account(ctx, me.id, payout=card_payout(ctx))
        return ClosedOut(**SubscriberOut.of(done.subscriber).model_dump(),
                         balance_fen=done.balance_fen, paid_to=done.paid_to,
                         reference=done.reference)

    return await idempotent(request, ctx.engine, ctx.clock, f"subscriber:{me.id}", key,
                            {"pin": _mac(ctx, body.pin)}, run)


# -- operators -------------------------------------------------------------------------------
def _admin(ctx: Context, subscriber_id: int) -> SubscriberAdminOut:
    d = lifecycle.describe(ctx, subscriber_id)
    return SubscriberAdminOut(
        **SubscriberOut.of(d.subscriber).model_dump(),
        wallet_account_id=d.subscriber.wallet_account_id, balance_fen=d.balance_fen,
        id_number_last4=d.id_number_last4,
        pin_locked_until=rfc3339(d.pin_locked_until) if d.pin_locked_until else None,
        closed_at=rfc3339(d.closed_at) if d.closed_at else None,
        events=[EventOut(kind=k, actor=a, reason=r, created_at=rfc3339(t))
                for k, a, r, t in d.events])


@operator.get("", response_model=SubscriberList, summary="Look subscribers up by MSISDN")
def find(ctx: Ctx, msisdn: Annotated[str, Query(min_length=1, max_length=32)]
         ) -> SubscriberList:
    """Everyone who ever held the number, newest first (closed ones included)."""
    return SubscriberList(items=[_admin(ctx, s.id) for s in history_by_msisdn(ctx, msisdn)])


@operator.get("/{subscriber_id}", response_model=SubscriberAdminOut,
              summary="One subscriber, with its audit log")
def show(ctx: Ctx, subscriber_id: SubscriberId) -> SubscriberAdminOut:
    return _admin(ctx, subscriber_id)


def _state_change(action: Any) -> Any:
    async def endpoint(request: Request, subscriber_id: SubscriberId, body: ReasonIn,
                       ctx: Ctx, key: IdemKey = None) -> Response:
        def run() -> SubscriberAdminOut:
            action(ctx, subscriber_id, body.reason, actor="operator")
            return _admin(ctx, subscriber_id)

        return await idempotent(request, ctx.engine, ctx.clock, "operator", key,
                                body.model_dump(), run)

    return endpoint


operator.post("/{subscriber_id}/freeze", response_model=SubscriberAdminOut,
              summary="Freeze: the wallet can receive, not pay nor withdraw",
              )(_state_change(lifecycle.freeze))
operator.post("/{subscriber_id}/unfreeze", response_model=SubscriberAdminOut,
              summary="Unfreeze")(_state_change(lifecycle.unfreeze))

routers: list[APIRouter] = [wallet, operator]
