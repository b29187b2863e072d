"""The loopback carrier billing system: a small FastAPI app speaking the carrier API of
docs/gateways.md.

It keeps one line per MSISDN in memory: prepaid (a charge spends airtime) or postpaid (a
charge is added to this month's bill, up to a credit limit). An unknown number is created
on first sight as a prepaid line with ``DEFAULT_AIRTIME_FEN``. Tests set lines up with
``PUT /_sim/lines/{msisdn}`` and script their next charges with
``POST /_sim/lines/{msisdn}/next`` (behaviours as in ``simkit``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from paycell.clock import Clock, SystemClock, rfc3339
from paycell.gateways.simkit import (
    BehavioursIn,
    Operation,
    SettleIn,
    SimCore,
    behaviours_or_422,
    valid_behaviour,
)

DEFAULT_AIRTIME_FEN = 30_000  # 300.00 CNY of prepaid airtime
DEFAULT_CREDIT_LIMIT_FEN = 200_000  # postpaid: 2,000.00 CNY a month


@dataclass
class SimLine:
    msisdn: str
    account_type: str = "prepaid"  # prepaid | postpaid
    airtime_fen: int = DEFAULT_AIRTIME_FEN
    bill_fen: int = 0
    credit_limit_fen: int = DEFAULT_CREDIT_LIMIT_FEN
    suspended: bool = False
    behaviour: str = "approve"
    bill_lines: list[dict[str, Any]] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {"msisdn": self.msisdn, "account_type": self.account_type,
                "airtime_fen": self.airtime_fen, "bill_fen": self.bill_fen,
                "credit_limit_fen": self.credit_limit_fen, "suspended": self.suspended,
                "behaviour": self.behaviour, "bill_lines": self.bill_lines}


class ChargeIn(BaseModel):
    reference: str = Field(min_length=1, max_length=200)
    msisdn: str = Field(min_length=3, max_length=20)
    amount_fen: int = Field(gt=0, le=10**11)
    currency: str = Field("CNY", pattern="^[A-Z]{3}$")


class LineIn(BaseModel):
    account_type: str | None = Field(None, pattern="^(prepaid|postpaid)$")
    airtime_fen: int | None = Field(None, ge=0)
    bill_fen: int | None = Field(None, ge=0)
    credit_limit_fen: int | None = Field(None, ge=0)
    suspended: bool | None = None
    behaviour: str | None = None


class CarrierSimulator:
    """The simulator's state and rules; :meth:`app` builds its HTTP face."""

    def __init__(self, *, clock: Clock | None = None, hang_s: float = 15.0,
                 delay_s: float = 5.0) -> None:
        self.clock = clock or SystemClock()
        self.core = SimCore("CB", clock=self.clock, hang_s=hang_s, delay_s=delay_s)
        self.lines: dict[str, SimLine] = {}

    def line(self, msisdn: str) -> SimLine:
        found = self.lines.get(msisdn)
        if found is None:
            found = self.lines[msisdn] = SimLine(msisdn)
        return found

    def process(self, op: Operation) -> None:
        line = self.line(op.subject)
        op.extra["account_type"] = line.account_type
        if line.suspended:
            op.status, op.reason = "rejected", "account_suspended"
        elif line.account_type == "prepaid":
            if line.airtime_fen < op.amount_fen:
                op.status, op.reason = "rejected", "insufficient_airtime"
            else:
                line.airtime_fen -= op.amount_fen
                op.status, op.reason = "approved", None
        elif line.bill_fen + op.amount_fen > line.credit_limit_fen:
            op.status, op.reason = "rejected", "credit_limit"
        else:
            line.bill_fen += op.amount_fen
            line.bill_lines.append({"reference": op.reference, "amount_fen": op.amount_fen,
                                    "at": rfc3339(self.clock.now_us()),
                                    "text": "paycell wallet top-up"})
            op.status, op.reason = "approved", None

    async def charge(self, body: ChargeIn) -> JSONResponse:
        line = self.line(body.msisdn)
        op = Operation(body.reference, "charge", line.msisdn, body.amount_fen, body.currency,
                       (body.msisdn, body.amount_fen, body.currency), self.clock.now_us(),
                       extra={"msisdn": line.msisdn, "account_type": line.account_type})
        behaviour = self.core.behaviour(line.msisdn, line.behaviour)
        return await self.core.submit(op, behaviour, self.process)

    def app(self) -> FastAPI:
        """Every handler is ``async``: the state is only touched on the event loop's thread."""
        api = FastAPI(title="paycell carrier billing simulator", version="1",
                      description="The loopback carrier of docs/gateways.md.")

        @api.post("/v1/charges", summary="Charge a phone account (airtime or bill)")
        async def charge(body: ChargeIn) -> JSONResponse:
            return await self.charge(body)

        @api.get("/v1/charges/{reference}", summary="What became of a charge")
        async def status(reference: str) -> JSONResponse:
            return self.core.status(reference, self.process)

        @api.get("/_sim/lines/{msisdn}", tags=["simulator"], summary="A line's state")
        async def show_line(msisdn: str) -> JSONResponse:
            return JSONResponse(self.line(msisdn).view())

        @api.put("/_sim/lines/{msisdn}", tags=["simulator"], summary="Set a line up")
        async def set_line(msisdn: str, body: LineIn) -> JSONResponse:
            if body.behaviour is not None and not valid_behaviour(body.behaviour):
                return JSONResponse({"reason": "unknown behaviour"}, status_code=422)
            line = self.line(msisdn)
            for name, value in body.model_dump(exclude_none=True).items():
                setattr(line, name, value)
            return JSONResponse(line.view())

        @api.post("/_sim/lines/{msisdn}/next", tags=["simulator"],
                  summary="Script the line's next charges")
        async def script(msisdn: str, body: BehavioursIn) -> JSONResponse:
            bad = behaviours_or_422(body)
            if bad is not None:
                return bad
            self.core.queue(self.line(msisdn).msisdn, body.behaviours)
            return JSONResponse({"msisdn": msisdn, "queued": list(self.core.queues[msisdn])})

        @api.post("/_sim/charges/{reference}/settle", tags=["simulator"],
                  summary="Decide a pending (delayed) charge")
        async def settle(reference: str, body: SettleIn) -> JSONResponse:
            return self.core.settle(reference, body, self.process)

        @api.get("/_sim/charges", tags=["simulator"], summary="Every charge")
        async def charges() -> JSONResponse:
            return JSONResponse([op.view() for op in self.core.ops.values()])

        return api

    def close(self) -> None:
        self.core.close()
