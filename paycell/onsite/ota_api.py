"""HTTP routes of OTA: operators queue jobs for a SIM's payment applet and follow them
(``/v1/operator/ota-jobs``, ``X-API-Key``). Proofs-of-receipt come back by SMS (the
inbound-text hook) or, from an OTA gateway that receives them itself, by ``POST
/v1/operator/ota-jobs/por``."""

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
from paycell.onsite import ota
from paycell.operators.model import Operator

CtxDep = Annotated[Context, Depends(get_context)]
OperatorDep = Annotated[Operator, Depends(require_operator)]
Command = Literal["install", "personalise", "lock", "unlock", "delete"]
State = Literal["queued", "sent", "confirmed", "failed"]


class OtaJobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    iccid: str = Field(pattern=r"^[0-9]{18,22}$", examples=["8986001234567890128"])
    command: Command
    msisdn: str | None = Field(default=None, max_length=20,
                               description="the SIM's number; default: the one known for it "
                                           "(its card's wallet)")
    card_id: int | None = Field(default=None, ge=1, description="personalise: the card")


class PorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    iccid: str = Field(pattern=r"^[0-9]{18,22}$")
    por: str = Field(max_length=200, description="the SIM's answer, 'OTAR1 <base64>'")


class OtaJobOut(BaseModel):
    id: int
    iccid: str
    msisdn: str
    command: Command
    card_id: int | None
    state: State
    attempts: int
    counter: int | None
    last_error: str | None
    created_by: str
    created_at: str
    sent_at: str | None
    next_attempt_at: str | None
    confirmed_at: str | None

    @classmethod
    def of(cls, job: ota.OtaJob) -> OtaJobOut:
        def t(us: int | None) -> str | None:
            return None if us is None else rfc3339(us)

        return cls(id=job.id, iccid=job.iccid, msisdn=job.msisdn,
                   command=job.command,  # type: ignore[arg-type]
                   card_id=job.card_id, state=job.state,  # type: ignore[arg-type]
                   attempts=job.attempts, counter=job.counter, last_error=job.last_error,
                   created_by=job.created_by, created_at=rfc3339(job.created_at),
                   sent_at=t(job.sent_at),
                   next_attempt_at=t(job.next_attempt_at) if job.state in ("queued", "sent")
                   else None, confirmed_at=t(job.confirmed_at))


class OtaJobPage(BaseModel):
    items: list[OtaJobOut]
    next_cursor: str | None


router = APIRouter(prefix="/operator/ota-jobs", tags=["operator"],
                   responses=problem_responses(401, 422))


@router.post("", response_model=OtaJobOut, status_code=201,
             responses=problem_responses(409), summary="Queue an OTA job")
async def create(request: Request, body: OtaJobIn, ctx: CtxDep, op: OperatorDep,
                 idempotency_key: KeyHeader = None) -> Response:
    """Queue a job for the SIM; the worker sends it (``paycell onsite ota-send`` sends now).
    422 ``iccid_invalid``, ``ota_command_invalid``, ``ota_sim_unknown``."""
    actor = f"operator:{op.id}"
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, actor, idempotency_key, body.model_dump(),
        lambda: OtaJobOut.of(ota.create_job(ctx, body.iccid, body.command, actor=actor,
                                            msisdn=body.msisdn, card_id=body.card_id)),
        status_code=201)


@router.get("", response_model=OtaJobPage, summary="OTA jobs, newest first")
def list_jobs(ctx: CtxDep, _: OperatorDep,
              iccid: Annotated[str | None, Query(max_length=22)] = None,
              state: State | None = None,
              cursor: Annotated[str | None, Query(max_length=100)] = None,
              limit: Annotated[int, Query(ge=1, le=200)] = 50) -> OtaJobPage:
    jobs = ota.list_jobs(ctx, iccid=iccid, state=state,
                         before_id=decode_cursor("ota", cursor), limit=limit + 1)
    more = len(jobs) > limit
    jobs = jobs[:limit]
    return OtaJobPage(items=[OtaJobOut.of(j) for j in jobs],
                      next_cursor=encode_cursor("ota", jobs[-1].id) if more else None)


@router.post("/por", response_model=OtaJobOut, summary="Hand in a SIM's proof-of-receipt")
def proof_of_receipt(body: PorIn, ctx: CtxDep, _: OperatorDep) -> OtaJobOut:
    """422 ``ota_por_invalid`` (malformed, another SIM's or job's, or a wrong MAC)."""
    return OtaJobOut.of(ota.receive_por(ctx, body.iccid, body.por))


@router.get("/{job_id}", response_model=OtaJobOut, responses=problem_responses(404),
            summary="An OTA job")
def show(ctx: CtxDep, _: OperatorDep,
         job_id: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> OtaJobOut:
    return OtaJobOut.of(ota.get_job(ctx, job_id))


routers: list[APIRouter] = [router]
