"""The loopback bank: a small FastAPI app speaking the bank API of docs/gateways.md.

It keeps its cards and operations in memory. A card is known by its number (PAN): any
Luhn-valid number works and is created on first sight with a large balance; the bank and
its name come from the number's first six digits (BIN). Test cards with fixed behaviours
are listed in :data:`TEST_CARDS`; tests can also set a card up (``PUT /_sim/cards/{pan}``)
or script its next operations (``POST /_sim/cards/{pan}/next``). Binding sends the holder
a six-digit code through the ``SmsGateway`` it is given, as a real bank texts its customer.

Tokens are the PAN encrypted with a key derived from ``secret``, so they keep working when
the simulator restarts (its balances and operations do not survive a restart).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from paycell.clock import Clock, SystemClock
from paycell.gateways.bank import luhn_complete, luhn_valid
from paycell.gateways.simkit import (
    BehavioursIn,
    Operation,
    SettleIn,
    SimCore,
    behaviours_or_422,
    valid_behaviour,
)
from paycell.gateways.sms import SmsGateway

BINS = {
    "622202": ("icbc", "Industrial and Commercial Bank of China"),
    "621700": ("ccb", "China Construction Bank"),
    "622848": ("abc", "Agricultural Bank of China"),
    "621661": ("boc", "Bank of China"),
    "622588": ("cmb", "China Merchants Bank"),
}
OTHER_BANK = ("testbank", "paycell Test Bank")
DEFAULT_BALANCE_FEN = 10_000_000  # 100,000.00 CNY
CODE_TTL_US = 300 * 1_000_000
CODE_TRIES = 3

# Fixed test cards (ICBC): number -> (behaviour, balance_fen, blocked).
TEST_CARDS: dict[str, tuple[str, int, bool]] = {
    luhn_complete("622202000000000"): ("approve", DEFAULT_BALANCE_FEN, False),
    luhn_complete("622202000000001"): ("approve", 0, False),  # insufficient funds
    luhn_complete("622202000000002"): ("approve", DEFAULT_BALANCE_FEN, True),  # blocked
    luhn_complete("622202000000003"): ("timeout", DEFAULT_BALANCE_FEN, False),
    luhn_complete("622202000000004"): ("delayed", DEFAULT_BALANCE_FEN, False),
    luhn_complete("622202000000005"): ("lost", DEFAULT_BALANCE_FEN, False),
}


@dataclass
class SimCard:
    pan: str
    bank: str
    bank_name: str
    balance_fen: int
    blocked: bool
    behaviour: str

    def view(self) -> dict[str, Any]:
        return {"pan": self.pan, "bank": self.bank, "bank_name": self.bank_name,
                "balance_fen": self.balance_fen, "blocked": self.blocked,
                "behaviour": self.behaviour}


@dataclass
class PendingVerification:
    pan: str
    msisdn: str
    code: str
    expires_at: int
    tries_left: int = CODE_TRIES
    status: str = "code_sent"  # code_sent | verified | rejected
    reason: str | None = None


class VerificationIn(BaseModel):
    reference: str = Field(min_length=1, max_length=200)
    pan: str = Field(min_length=1, max_length=40)
    holder_msisdn: str = Field(min_length=3, max_length=20)


class CodeIn(BaseModel):
    code: str = Field(min_length=1, max_length=12)


class MoneyIn(BaseModel):
    reference: str = Field(min_length=1, max_length=200)
    token: str = Field(min_length=1, max_length=500)
    amount_fen: int = Field(gt=0, le=10**13)
    currency: str = Field("CNY", pattern="^[A-Z]{3}$")


class CardIn(BaseModel):
    balance_fen: int | None = Field(None, ge=0)
    blocked: bool | None = None
    behaviour: str | None = None


class BankSimulator:
    """The simulator's state and rules; :meth:`app` builds its HTTP face."""

    def __init__(self, sms: SmsGateway | Callable[[], SmsGateway], *,
                 clock: Clock | None = None, secret: str = "paycell-bank-sim",
                 hang_s: float = 15.0, delay_s: float = 5.0) -> None:
        self._sms = sms
        self.clock = clock or SystemClock()
        self.core = SimCore("BK", clock=self.clock, hang_s=hang_s, delay_s=delay_s)
        key = base64.urlsafe_b64encode(hashlib.sha256(f"bank-sim:{secret}".encode()).digest())
        self.fernet = Fernet(key)
        self.cards: dict[str, SimCard] = {}
        self.verifications: dict[str, PendingVerification] = {}

    # -- cards and tokens ------------------------------------------------------------------
    def card(self, pan: str) -> SimCard:
        found = self.cards.get(pan)
        if found is None:
            bank, name = BINS.get(pan[:6], OTHER_BANK)
            behaviour, balance, blocked = TEST_CARDS.get(pan, ("approve", DEFAULT_BALANCE_FEN,
                                                               False))
            found = self.cards[pan] = SimCard(pan, bank, name, balance, blocked, behaviour)
        return found

    def token_for(self, pan: str) -> str:
        return "tok_" + self.fernet.encrypt(pan.encode()).decode()

    def card_for_token(self, token: str) -> SimCard | None:
        try:
            pan = self.fernet.decrypt(token.removeprefix("tok_").encode()).decode()
        except (InvalidToken, ValueError):
            return None
        return self.card(pan)

    def sms(self) -> SmsGateway:
        return self._sms() if callable(self._sms) else self._sms

    # -- rules -----------------------------------------------------------------------------
    def process(self, op: Operation) -> None:
        card = self.cards.get(op.subject)
        if card is None:
            op.status, op.reason = "rejected", "invalid_token"
        elif card.blocked:
            op.status, op.reason = "rejected", "card_blocked"
        elif op.kind == "debit" and card.balance_fen < op.amount_fen:
            op.status, op.reason = "rejected", "insufficient_funds"
        else:
            card.balance_fen += op.amount_fen if op.kind == "credit" else -op.amount_fen
            op.status, op.reason = "approved", None

    # -- verification ----------------------------------------------------------------------
    async def start_verification(self, body: VerificationIn) -> JSONResponse:
        pan = "".join(body.pan.split())
        if not luhn_valid(pan):
            return JSONResponse({"reference": body.reference, "status": "rejected",
                                 "reason": "card_number_invalid"}, status_code=422)
        card = self.card(pan)
        base = {"reference": body.reference, "bank": card.bank, "bank_name": card.bank_name,
                "last4": pan[-4:]}
        if card.blocked:
            return JSONResponse({**base, "status": "rejected", "reason": "card_blocked"})
        known = self.verifications.get(body.reference)
        if known is not None and known.pan == pan:
            return JSONResponse({**base, "status": known.status, "reason": known.reason})
        code = f"{secrets.randbelow(10**6):06d}"
        self.verifications[body.reference] = PendingVerification(
            pan, body.holder_msisdn, code, self.clock.now_us() + CODE_TTL_US)
        text = (f"[{card.bank.upper()}] {code} is your code to link the card ending "
                f"{pan[-4:]} to your paycell wallet. It expires in 5 minutes; do not share it.")
        await run_in_threadpool(self.sms().send, body.holder_msisdn, text)
        return JSONResponse({**base, "status": "code_sent", "reason": None})

    def confirm_verification(self, reference: str, body: CodeIn) -> JSONResponse:
        v = self.verifications.get(reference)
        if v is None:
            return JSONResponse({"status": "rejected", "reason": "verification_not_found"},
                                status_code=404)
        card = self.card(v.pan)
        if v.status == "code_sent":
            if self.clock.now_us() > v.expires_at:
                v.status, v.reason = "rejected", "code_expired"
            elif secrets.compare_digest(body.code, v.code):
                v.status = "verified"
            else:
                v.tries_left -= 1
                if v.tries_left <= 0:
                    v.status, v.reason = "rejected", "too_many_attempts"
                else:
                    return JSONResponse({"reference": reference, "status": "code_invalid",
                                         "reason": "code_invalid", "tries_left": v.tries_left})
        out: dict[str, Any] = {"reference": reference, "status": v.status, "reason": v.reason,
                               "bank": card.bank, "bank_name": card.bank_name,
                               "last4": v.pan[-4:]}
        if v.status == "verified":
            out["token"] = self.token_for(v.pan)
        return JSONResponse(out)

    # -- money -----------------------------------------------------------------------------
    async def money(self, kind: str, body: MoneyIn) -> JSONResponse:
        card = self.card_for_token(body.token)
        subject = card.pan if card else "?"
        op = Operation(body.reference, kind, subject, body.amount_fen, body.currency,
                       (kind, body.token, body.amount_fen, body.currency),
                       self.clock.now_us())
        behaviour = self.core.behaviour(subject, card.behaviour if card else "approve")
        return await self.core.submit(op, behaviour, self.process)

    # -- HTTP ------------------------------------------------------------------------------
    def app(self) -> FastAPI:
        """Every handler is ``async``: the state is only touched on the event loop's thread."""
        api = FastAPI(title="paycell bank simulator", version="1",
                      description="The loopback bank of docs/gateways.md. Not a real bank.")

        @api.post("/v1/verifications", summary="Start verifying a card's holder (SMS code)")
        async def start(body: VerificationIn) -> JSONResponse:
            return await self.start_verification(body)

        @api.post("/v1/verifications/{reference}/confirm", summary="Confirm with the code")
        async def confirm(reference: str, body: CodeIn) -> JSONResponse:
            return self.confirm_verification(reference, body)

        @api.post("/v1/debits", summary="Take money from a card")
        async def debit(body: MoneyIn) -> JSONResponse:
            return await self.money("debit", body)

        @api.post("/v1/credits", summary="Pay money to a card")
        async def credit(body: MoneyIn) -> JSONResponse:
            return await self.money("credit", body)

        @api.get("/v1/operations/{reference}", summary="What became of an operation")
        async def status(reference: str) -> JSONResponse:
            return self.core.status(reference, self.process)

        @api.get("/_sim/cards/{pan}", tags=["simulator"], summary="A card's state")
        async def show_card(pan: str) -> JSONResponse:
            if not luhn_valid(pan):
                return JSONResponse({"reason": "card_number_invalid"}, status_code=422)
            return JSONResponse(self.card(pan).view())

        @api.put("/_sim/cards/{pan}", tags=["simulator"], summary="Set a card up")
        async def set_card(pan: str, body: CardIn) -> JSONResponse:
            if not luhn_valid(pan):
                return JSONResponse({"reason": "card_number_invalid"}, status_code=422)
            if body.behaviour is not None and not valid_behaviour(body.behaviour):
                return JSONResponse({"reason": "unknown behaviour"}, status_code=422)
            card = self.card(pan)
            if body.balance_fen is not None:
                card.balance_fen = body.balance_fen
            if body.blocked is not None:
                card.blocked = body.blocked
            if body.behaviour is not None:
                card.behaviour = body.behaviour
            return JSONResponse(card.view())

        @api.post("/_sim/cards/{pan}/next", tags=["simulator"],
                  summary="Script the card's next operations")
        async def script(pan: str, body: BehavioursIn) -> JSONResponse:
            bad = behaviours_or_422(body)
            if bad is not None:
                return bad
            self.core.queue(self.card(pan).pan, body.behaviours)
            return JSONResponse({"pan": pan, "queued": list(self.core.queues[pan])})

        @api.post("/_sim/operations/{reference}/settle", tags=["simulator"],
                  summary="Decide a pending (delayed) operation")
        async def settle(reference: str, body: SettleIn) -> JSONResponse:
            return self.core.settle(reference, body, self.process)

        @api.get("/_sim/operations", tags=["simulator"], summary="Every operation")
        async def operations() -> JSONResponse:
            return JSONResponse([op.view() for op in self.core.ops.values()])

        return api

    def close(self) -> None:
        self.core.close()
