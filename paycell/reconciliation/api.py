"""HTTP API of paycell.reconciliation (mounted under /v1 by paycell.api.app).

- operators (``X-API-Key``): ``/v1/operator/reconciliation/...``: upload a statement file
  (the request body, streamed to a temporary file), statements, difference items, their
  resolution (money-moving ones proposed for a second operator's approval);
- merchants (signed requests): ``GET /v1/merchant/bills/{date}``, their own daily bill.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from paycell.api import idempotency as idem
from paycell.api.auth import require_operator
from paycell.api.deps import get_context
from paycell.api.errors import problem_responses
from paycell.api.params import MAX_ID, KeyHeader
from paycell.api.rows import row_model
from paycell.context import Context
from paycell.merchants.auth import current_merchant
from paycell.merchants.model import Merchant
from paycell.operators.model import Operator
from paycell.reconciliation import bills, resolve, service
from paycell.reconciliation.errors import StatementInvalidError
from paycell.reconciliation.matching import Summary
from paycell.reconciliation.service import Item
from paycell.reconciliation.tables import resolutions

Ctx = Annotated[Context, Depends(get_context)]
OperatorDep = Annotated[Operator, Depends(require_operator)]
MerchantDep = Annotated[Merchant, Depends(current_merchant)]
MAX_UPLOAD = 2 << 30  # 2 GiB
IdPath = Annotated[int, PathParam(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]

operator_router = APIRouter(prefix="/operator/reconciliation",
                            tags=["operator: reconciliation"],
                            responses=problem_responses(401, 403, 404, 409, 422))
merchant_router = APIRouter(prefix="/merchant/bills", tags=["merchant: bills"],
                            responses=problem_responses(401, 403, 409, 422))
routers: list[APIRouter] = [operator_router, merchant_router]


class ResolveIn(BaseModel):
    action: Literal["accept", "rematch", "write_off", "pass_on"]
    note: str = Field(min_length=1, max_length=500)
    target: str | None = Field(None, max_length=60,
                               description="pass_on: wallet:<msisdn> or merchant:<id>")
    with_item: int | None = Field(None, ge=1, le=MAX_ID, description="rematch: the other item")


class ReconStatementOut(BaseModel):
    """An imported statement: its totals (fen) and how many lines fell in each category."""

    id: int
    source: str = Field(examples=["bank"])
    partner: str
    business_date: str = Field(examples=["2026-11-25"])
    lines: int
    in_fen: int
    out_fen: int
    encoding: str
    state: str = Field(examples=["posted"])
    filename: str
    counts: dict[str, int]
    created_at: int


class ResolveOut(BaseModel):
    """``resolved`` at once (accept, rematch: ``with_item``), or ``proposed`` for another
    operator to approve (write_off, pass_on: ``approval_id``)."""

    state: Literal["resolved", "proposed"]
    item_id: int
    approval_id: int | None = None
    with_item: int | None = None


ResolutionOut = row_model(resolutions, "ResolutionOut",
                          "One resolution of a difference item, as logged.")


@operator_router.post("/statements", response_model=Summary,
                      summary="Import and match a statement file",
                      description="The body is the file itself (docs/reconciliation.md), "
                                  "UTF-8 or GBK. The same file again changes nothing.")
async def upload_statement(
    request: Request, ctx: Ctx, op: OperatorDep,
    source: Annotated[Literal["bank", "carrier", "transit"] | None, Query()] = None,
    encoding: Annotated[Literal["utf-8", "gbk"] | None, Query()] = None,
) -> JSONResponse:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "statement.csv"
        size = 0
        with path.open("wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_UPLOAD:
                    raise StatementInvalidError("the file is larger than 2 GiB", field="body")
                f.write(chunk)
        if size == 0:
            raise StatementInvalidError("send the statement file as the request body",
                                        line=1, field="body")
        summary = await run_in_threadpool(service.reconcile_file, ctx, path, source=source,
                                          encoding=encoding, actor=f"operator:{op.name}")
    return JSONResponse(summary.as_dict(), status_code=201 if summary.created else 200)


@operator_router.get("/statements", response_model=list[ReconStatementOut],
                     summary="Imported statements, newest first")
async def statements(ctx: Ctx, _op: OperatorDep,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Any:
    return await run_in_threadpool(service.list_statements, ctx, limit=limit)


@operator_router.get("/statements/{statement_id}", response_model=Summary,
                     summary="A statement's summary")
async def statement(ctx: Ctx, _op: OperatorDep, statement_id: IdPath) -> Any:
    return (await run_in_threadpool(service.get_statement, ctx, statement_id)).as_dict()


@operator_router.get("/items", response_model=list[Item],
                     summary="Difference items (open by default), newest first")
async def list_items(
    ctx: Ctx, _op: OperatorDep,
    state: Annotated[Literal["open", "resolved", "all"], Query()] = "open",
    statement_id: IdQuery = None, before_id: IdQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    found = await run_in_threadpool(service.list_items, ctx,
                                    state=None if state == "all" else state,
                                    statement_id=statement_id, before_id=before_id,
                                    limit=limit)
    return [i.__dict__ for i in found]


@operator_router.post("/items/{item_id}/resolve", response_model=ResolveOut,
                      summary="Resolve an item",
                      description="accept and rematch act at once (200); write_off and "
                                  "pass_on are proposed (202) for another operator to "
                                  "approve at /v1/approvals/{id}/approve.")
async def resolve_item(request: Request, ctx: Ctx, op: OperatorDep, item_id: IdPath,
                       body: ResolveIn, idempotency_key: KeyHeader = None) -> Response:
    money_moves = body.action in ("write_off", "pass_on")
    return await idem.idempotent(
        request, ctx.engine, ctx.clock, f"operator:{op.id}", idempotency_key, body,
        lambda: resolve.resolve(ctx, op, item_id, body.action, body.note,
                                target=body.target, with_item=body.with_item),
        status_code=202 if money_moves else 200)


@operator_router.get("/resolutions", response_model=list[ResolutionOut],  # type: ignore[valid-type]
                     summary="The resolution log, newest first")
async def resolution_log(ctx: Ctx, _op: OperatorDep,
                         limit: Annotated[int, Query(ge=1, le=500)] = 100) -> Any:
    return await run_in_threadpool(resolve.resolution_log, ctx, limit=limit)


@merchant_router.get("/{date}", summary="Your daily bill (CSV)",
                     response_class=StreamingResponse,
                     responses={200: {"content": {"text/csv": {}}}})
async def merchant_bill(ctx: Ctx, merchant: MerchantDep, date: str) -> StreamingResponse:
    bills.bill_window(ctx, date)  # refuse a bad or unfinished date before streaming
    return StreamingResponse(bills.bill_lines(ctx, merchant, date),
                             media_type="text/csv; charset=utf-8", headers={
                                 "Content-Disposition":
                                     f'attachment; filename="bill-{merchant.code}-{date}.csv"'})
