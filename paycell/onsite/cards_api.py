"""HTTP routes of NFC SIM cards: the wallet app's (``/v1/wallet/nfc-cards``, Bearer token:
the holder's own cards, with the PAN masked) and the operators' (``/v1/operator/nfc-cards``,
``X-API-Key``: issue, activate, lock, unlock, report lost, terminate, list). Every POST takes
an Idempotency-Key. (``/v1/wallet/cards`` is bank cards.)"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from paycell.api import idempotency as idem
from paycell.api.auth import require_operator
from paycell.api.deps import get_context
from paycell.api.errors import problem_responses
from paycell.api.params import KeyHeader
from paycell.clock import rfc3339
from paycell.context import Context
from paycell.funding.cash_common import decode_cursor, encode_cursor
from paycell.onsite import cards
from paycell.subscribers.auth import current_subscriber
from paycell.subscribers.service import Subscriber, SubscriberNotFoundError, find_by_msisdn

CtxDep = Annotated[Context, Depends(get_context)]
SubscriberDep = Annotated[Subscriber, Depends(current_subscriber)]
CardId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Action = Literal["activate", "lock", "unlock", "report-lost", "terminate"]


# -- models -----------------------------------------------------------------------------------
class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CardIssueIn(_In):
    msisdn: str = Field(min_length=5, max_length=20, examples=["+8613812345678"])
    iccid: str = Field(min_length=19, max_length=24, examples=["8986001234567890128"],
                       description="the SIM's ICCID: 19 or 20 digits starting 89, Luhn")


class CardActionIn(_In):
    reason: str | None = Field(default=None, max_length=200)


class NfcCardOut(BaseModel):
    id: int
    subscriber_id: int
    iccid: str
    pan: str = Field(description="masked in the wallet app")
    psn: str
    state: Literal["issued", "active", "locked", "lost", "terminated"]
    hot_listed: bool
    block_reason: str | None
    ecash_balance_fen: int = Field(description="what the card's offline purse holds")
    ecash_limit_fen: int
    currency: str = "CNY"
    created_at: str
    activated_at: str | None
    blocked_at: str | None
    terminated_at: str | None

    @classmethod
    def of(cls, ctx: Context, card: cards.Card, *, masked: bool = False) -> NfcCardOut:
        def t(us: int | None) -> str | None:
            return None if us is None else rfc3339(us)

        return cls(id=card.id, subscriber_id=card.subscriber_id, iccid=card.iccid,
                   pan=card.pan_masked if masked else card.pan, psn=card.psn,
                   state=card.state,  # type: ignore[arg-type]
                   hot_listed=card.hot_listed, block_reason=card.block_reason,
                   ecash_balance_fen=ctx.ledger.account(card.ecash_account_id).balance,
                   ecash_limit_fen=card.ecash_limit_fen, created_at=rfc3339(card.created_at),
                   activated_at=t(card.activated_at), blocked_at=t(card.blocked_at),
                   terminated_at=t(card.terminated_at))


class NfcCardPage(BaseModel):
    items: list[NfcCardOut]
    next_cursor: str | None


def _act(ctx: Context, action: str, card_id: int, actor: str, reason: str | None,
         subscriber_id: int | None = None) -> cards.Card:
    if action == "activate":
        return cards.activate(ctx, card_id, actor=actor, subscriber_id=subscriber_id)
    if action == "lock":
        return cards.lock(ctx, card_id, actor=actor, reason=reason, subscriber_id=subscriber_id)
    if action == "unlock":
        return cards.unlock(ctx, card_id, actor=actor, subscriber_id=subscriber_id)
    if action == "report-lost":
        return cards.report_lost(ctx, card_id, actor, reason=reason, subscriber_id=subscriber_id)
    return cards.terminate(ctx, card_id, actor=actor, reason=reason, subscriber_id=subscriber_id)


# -- the wallet app ---------------------------------------------------------------------------
wallet_router = APIRouter(prefix="/wallet/nfc-cards", tags=["wallet"],
                          responses=problem_responses(401, 422))


@wallet_router.get("", response_model=list[NfcCardOut], summary="My NFC SIM cards")
def my_cards(ctx: CtxDep, sub: SubscriberDep) -> list[NfcCardOut]:
    return [NfcCardOut.of(ctx, c, masked=True)
            for c in cards.list_cards(ctx, subscriber_id=sub.id, limit=50)[:50]]


@wallet_router.get("/{card_id}", response_model=NfcCardOut,
                   responses=problem_responses(404), summary="One of my NFC SIM cards")
def my_card(ctx: CtxDep, sub: SubscriberDep, card_id: CardId) -> NfcCardOut:
    return NfcCardOut.of(ctx, cards.get_card(ctx, card_id, subscriber_id=sub.id), masked=True)


@wallet_router.post("/{card_id}/{action}", response_model=NfcCardOut,
                    responses=problem_responses(404, 409),
                    summary="Activate, lock, unlock or report lost my card")
async def my_card_action(request: Request, ctx: CtxDep, sub: SubscriberDep, card_id: CardId,
                         action: Literal["activate", "lock", "unlock", "report-lost"],
                         body: CardActionIn | None = None,
                         idempotency_key: KeyHeader = None) -> Response:
    """``report-lost`` blocks the card at once (hot list) and queues the SIM applet's lock.
    404 ``nfc_card_not_found``; 409 ``nfc_card_state_invalid``."""
    reason = body.reason if body else None
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, f"subscriber:{sub.id}", idempotency_key,
        {"reason": reason},
        lambda: NfcCardOut.of(ctx, _act(ctx, action, card_id, f"subscriber:{sub.id}",
                                        reason, sub.id), masked=True))


# -- operators --------------------------------------------------------------------------------
operator_router = APIRouter(prefix="/operator/nfc-cards", tags=["operator"],
                            dependencies=[Depends(require_operator)],
                            responses=problem_responses(401, 422))


def _operator(request: Request) -> str:
    op = getattr(request.state, "operator", None)
    return f"operator:{op.name}" if op is not None else "operator"


@operator_router.post("", response_model=NfcCardOut, status_code=201,
                      responses=problem_responses(404, 409), summary="Issue an NFC SIM card")
async def issue(request: Request, body: CardIssueIn, ctx: CtxDep,
                idempotency_key: KeyHeader = None) -> Response:
    """Issue a card on the SIM ``iccid`` bound to the wallet of ``msisdn`` (state
    ``issued``; OTA then installs and personalises the applet). 404 ``subscriber_not_found``;
    409 ``iccid_taken``, ``nfc_card_exists``; 422 ``iccid_invalid``."""
    actor = _operator(request)

    def run() -> NfcCardOut:
        sub = find_by_msisdn(ctx, body.msisdn)
        if sub is None:
            raise SubscriberNotFoundError(f"no wallet has the number {body.msisdn}")
        return NfcCardOut.of(ctx, cards.issue_card(ctx, sub, body.iccid, actor=actor))

    return await idem.idempotent(request, ctx.engine, ctx.clock, "operator",
                                 idempotency_key, body, run, status_code=201)


@operator_router.get("", response_model=NfcCardPage, summary="NFC SIM cards, by id")
def list_all(ctx: CtxDep, msisdn: Annotated[str | None, Query(max_length=20)] = None,
             state: Annotated[str | None, Query(max_length=12)] = None,
             cursor: Annotated[str | None, Query(max_length=100)] = None,
             limit: Annotated[int, Query(ge=1, le=200)] = 50) -> NfcCardPage:
    subscriber_id = None
    if msisdn is not None:
        sub = find_by_msisdn(ctx, msisdn)
        if sub is None:
            return NfcCardPage(items=[], next_cursor=None)
        subscriber_id = sub.id
    rows = cards.list_cards(ctx, subscriber_id=subscriber_id, state=state,
                            after_id=decode_cursor("nfc", cursor), limit=limit)
    nxt = encode_cursor("nfc", rows[limit - 1].id) if len(rows) > limit else None
    return NfcCardPage(items=[NfcCardOut.of(ctx, c) for c in rows[:limit]], next_cursor=nxt)


@operator_router.get("/{card_id}", response_model=NfcCardOut,
                     responses=problem_responses(404), summary="An NFC SIM card")
def show(ctx: CtxDep, card_id: CardId) -> NfcCardOut:
    return NfcCardOut.of(ctx, cards.get_card(ctx, card_id))


@operator_router.post("/{card_id}/{action}", response_model=NfcCardOut,
                      responses=problem_responses(404, 409),
                      summary="Activate, lock, unlock, report lost or terminate a card")
async def card_action(request: Request, ctx: CtxDep, card_id: CardId, action: Action,
                      body: CardActionIn | None = None,
                      idempotency_key: KeyHeader = None) -> Response:
    """Each is idempotent (a card already in the target state is returned). 404
    ``nfc_card_not_found``; 409 ``nfc_card_state_invalid``."""
    reason = body.reason if body else None
    actor = _operator(request)
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, "operator", idempotency_key, {"reason": reason},
        lambda: NfcCardOut.of(ctx, _act(ctx, action, card_id, actor, reason)))


routers: list[APIRouter] = [wallet_router, operator_router]
