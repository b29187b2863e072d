"""HTTP routes of transit e-cash: the wallet app loads its card's purse
(``/v1/wallet/nfc-cards/{id}/ecash/loads``, Bearer token), gates upload offline batches and
download the hot list (``/v1/terminal/...``, MACed like every terminal message, see
``terminals_api``), operators read batches and the hot list (``X-API-Key``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from paycell.api.auth import require_operator
from paycell.api.deps import get_context
from paycell.api.errors import problem_responses
from paycell.clock import rfc3339
from paycell.context import Context
from paycell.onsite import ecash, emv
from paycell.onsite.terminals import Terminal
from paycell.onsite.terminals_api import current_terminal
from paycell.subscribers.auth import current_subscriber
from paycell.subscribers.service import Subscriber

CtxDep = Annotated[Context, Depends(get_context)]
SubscriberDep = Annotated[Subscriber, Depends(current_subscriber)]
TermDep = Annotated[Terminal, Depends(current_terminal)]
CardId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Hex8 = Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{16}$")]
Un = Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{8}$", description="unpredictable number")]
Date = Annotated[str, Field(pattern=r"^[0-9]{6}$", description="YYMMDD")]
Atc = Annotated[int, Field(ge=1, le=0xFFFF)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _CardData(_In):
    """The data the card's cryptogram covers (CDOL1), as the card and terminal built it."""

    atc: Atc
    amount_fen: int = Field(gt=0, le=10**10)
    date: Date
    unpredictable: Un
    cvr: str = Field(pattern=r"^[0-9A-Fa-f]{8}$")
    aip: str = Field(default="7C00", pattern=r"^[0-9A-Fa-f]{4}$")
    tvr: str = Field(default="0000000000", pattern=r"^[0-9A-Fa-f]{10}$")
    country: str = Field(default="0156", pattern=r"^[0-9]{4}$")
    currency: str = Field(default="0156", pattern=r"^[0-9]{4}$")
    other_fen: int = Field(default=0, ge=0, le=0)


class EcashLoadIn(_CardData):
    arqc: Hex8
    card_balance_fen: int = Field(ge=0, le=10**10,
                                  description="the purse balance the card reported (9F79)")

    def txn(self) -> emv.TxnData:
        return emv.TxnData(amount_fen=self.amount_fen, other_fen=self.other_fen,
                           country=self.country, tvr=self.tvr, currency=self.currency,
                           date=self.date, txn_type="60", unpredictable=self.unpredictable,
                           aip=self.aip, atc=self.atc, cvr=self.cvr)


class EcashLoadOut(BaseModel):
    id: int
    card_id: int
    atc: int
    amount_fen: int
    new_balance_fen: int
    currency: str = "CNY"
    arc: str = Field(description="authorisation response code, ASCII ('00' approved)")
    arpc: str = Field(description="hex, for the card's second GENERATE AC")
    issuer_script: str = Field(description="hex: PUT DATA 9F79 with the new balance, MACed")

    @classmethod
    def of(cls, r: ecash.LoadResult) -> EcashLoadOut:
        return cls(id=r.id, card_id=r.card_id, atc=r.atc, amount_fen=r.amount_fen,
                   new_balance_fen=r.new_balance_fen, arc=r.arc.decode(),
                   arpc=r.arpc.hex().upper(), issuer_script=r.script.hex().upper())


class OfflineRecordIn(_CardData):
    pan: str = Field(pattern=r"^[0-9]{12,19}$")
    psn: str = Field(pattern=r"^[0-9]{2}$")
    tc: Hex8
    txn_type: str = Field(default="00", pattern=r"^00$")

    def record(self) -> ecash.OfflineRecord:
        return ecash.OfflineRecord(
            pan=self.pan, psn=self.psn, atc=self.atc, amount_fen=self.amount_fen,
            date=self.date, unpredictable=self.unpredictable, tc=bytes.fromhex(self.tc),
            cvr=self.cvr, aip=self.aip, tvr=self.tvr, country=self.country,
            currency=self.currency, txn_type=self.txn_type, other_fen=self.other_fen)


class BatchIn(_In):
    batch_ref: str | None = Field(default=None, max_length=64)
    records: list[OfflineRecordIn] = Field(max_length=5000)


class RecordOutcomeOut(BaseModel):
    pan: str
    atc: int
    status: str = Field(description="cleared | partial (over-spend) | duplicate | rejected")
    reason: str | None
    cleared_fen: int
    excess_fen: int


class BatchOut(BaseModel):
    id: int
    terminal_id: str
    records: int
    cleared: int
    duplicates: int
    rejected: int
    cleared_fen: int
    excess_fen: int
    outcomes: list[RecordOutcomeOut]

    @classmethod
    def of(cls, r: ecash.BatchResult) -> BatchOut:
        return cls(id=r.id, terminal_id=r.terminal_id, records=r.records, cleared=r.cleared,
                   duplicates=r.duplicates, rejected=r.rejected, cleared_fen=r.cleared_fen,
                   excess_fen=r.excess_fen,
                   outcomes=[RecordOutcomeOut(pan=o.pan[:6] + "*" * (len(o.pan) - 10)
                                              + o.pan[-4:], atc=o.atc, status=o.status,
                                              reason=o.reason, cleared_fen=o.cleared_fen,
                                              excess_fen=o.excess_fen) for o in r.outcomes])


class HotCardOut(BaseModel):
    pan: str
    psn: str
    reason: str
    since: str


class HotListOut(BaseModel):
    generated_at: str
    cards: list[HotCardOut]


def _hot_list(ctx: Context) -> HotListOut:
    return HotListOut(generated_at=rfc3339(ctx.clock.now_us()),
                      cards=[HotCardOut(pan=e.pan, psn=e.psn, reason=e.reason,
                                        since=rfc3339(e.since)) for e in ecash.hot_list(ctx)])


# -- the wallet app ---------------------------------------------------------------------------
wallet_router = APIRouter(prefix="/wallet/nfc-cards", tags=["wallet"],
                          responses=problem_responses(401, 422))


@wallet_router.post("/{card_id}/ecash/loads", response_model=EcashLoadOut,
                    responses=problem_responses(403, 404, 409),
                    summary="Load the card's e-cash purse (圈存)")
def load(ctx: CtxDep, sub: SubscriberDep, card_id: CardId, body: EcashLoadIn) -> EcashLoadOut:
    """Move ``amount_fen`` from the wallet to the card's purse. The body is what the card
    produced (its ARQC over a type 60 transaction); the answer goes back into the card's
    second GENERATE AC. Idempotent per ATC. 403 ``ecash_cryptogram_invalid``,
    ``ecash_card_blocked``; 409 ``atc_replayed``, ``ecash_purse_limit``, ``overdraft``."""
    return EcashLoadOut.of(ecash.load_ecash(
        ctx, card_id, body.txn(), bytes.fromhex(body.arqc), body.card_balance_fen,
        actor=f"subscriber:{sub.id}", subscriber_id=sub.id))


# -- gates ------------------------------------------------------------------------------------
terminal_router = APIRouter(prefix="/terminal", tags=["terminal"],
                            responses=problem_responses(401, 403, 422))


@terminal_router.post("/ecash-batches", response_model=BatchOut,
                      summary="Upload the fares approved offline")
def upload_batch(ctx: CtxDep, term: TermDep, body: BatchIn) -> BatchOut:
    """Clear a batch of offline e-cash records into the terminal's merchant payable. A
    record already cleared (any batch) is a duplicate; a bad TC is rejected. Safe to
    upload again."""
    return BatchOut.of(ecash.clear_batch(ctx, term, [r.record() for r in body.records],
                                         batch_ref=body.batch_ref))


@terminal_router.get("/hot-list", response_model=HotListOut,
                     summary="Cards to refuse offline")
def terminal_hot_list(ctx: CtxDep, term: TermDep) -> HotListOut:
    return _hot_list(ctx)


# -- operators --------------------------------------------------------------------------------
operator_router = APIRouter(prefix="/operator", tags=["operator"],
                            dependencies=[Depends(require_operator)],
                            responses=problem_responses(401, 422))


@operator_router.get("/ecash/hot-list", response_model=HotListOut, summary="The hot list")
def operator_hot_list(ctx: CtxDep) -> HotListOut:
    return _hot_list(ctx)


class PurseOut(BaseModel):
    card_id: int
    loaded_fen: int
    cleared_fen: int
    excess_fen: int = Field(description="spent beyond what was loaded (fraud)")
    purse_fen: int = Field(description="the CARD_ECASH liability now")


@operator_router.get("/nfc-cards/{card_id}/ecash", response_model=PurseOut,
                     responses=problem_responses(404), summary="A card's e-cash purse")
def purse(ctx: CtxDep, card_id: CardId) -> PurseOut:
    return PurseOut(card_id=card_id, **ecash.purse_summary(ctx, card_id))


routers: list[APIRouter] = [wallet_router, terminal_router, operator_router]
