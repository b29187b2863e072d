"""HTTP routes of notifications: operators see and re-send any (``/v1/notifications``),
merchants see their own (``/v1/merchant/notifications``)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from paycell.api import idempotency as idem
from paycell.api.auth import require_operator
from paycell.api.deps import get_context
from paycell.api.errors import problem_responses
from paycell.api.params import MAX_ID, KeyHeader
from paycell.context import Context
from paycell.merchants.auth import current_merchant
from paycell.merchants.model import Merchant
from paycell.notifications import service
from paycell.notifications.schemas import NotificationDetailOut, NotificationOut, NotificationPage
from paycell.operators.model import Operator
from paycell.operators.service import require_role

CtxDep = Annotated[Context, Depends(get_context)]
OperatorDep = Annotated[Operator, Depends(require_operator)]
MerchantDep = Annotated[Merchant, Depends(current_merchant)]
NotificationId = Annotated[str, Path(min_length=1, max_length=40,
                                     examples=["ntf_5f0c3e8a9b1d2c4e6f7a8b9c"])]
State = Annotated[Literal["pending", "delivering", "delivered", "failed"] | None, Query()]
Cursor = Annotated[str | None, Query(max_length=100)]
Limit = Annotated[int, Query(ge=1, le=200)]


def _page(items: list[service.Notification], cursor: str | None) -> NotificationPage:
    return NotificationPage(items=[NotificationOut.of(n) for n in items], next_cursor=cursor)


# -- operators ------------------------------------------------------------------------------
operator_router = APIRouter(prefix="/notifications", tags=["notifications"],
                            dependencies=[Depends(require_operator)],
                            responses=problem_responses(401, 422))


@operator_router.get("", response_model=NotificationPage, summary="Notifications, newest first")
def list_notifications(
    ctx: CtxDep, state: State = None, cursor: Cursor = None, limit: Limit = 50,
    merchant_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> NotificationPage:
    """Optionally of one merchant and/or in one state (``failed``: given up)."""
    items, next_cursor = service.list_notifications(
        ctx, merchant_id=merchant_id, state=state, cursor=cursor, limit=limit)
    return _page(items, next_cursor)


@operator_router.get("/{notification_id}", response_model=NotificationDetailOut,
                     responses=problem_responses(404), summary="A notification and its attempts")
def show_notification(ctx: CtxDep, notification_id: NotificationId) -> NotificationDetailOut:
    """404 ``notification_not_found``."""
    return NotificationDetailOut.of_detail(service.get_notification(ctx, notification_id))


@operator_router.post("/{notification_id}/resend", response_model=NotificationDetailOut,
                      responses=problem_responses(403, 404, 409),
                      summary="Re-send a notification now, once")
async def resend_notification(request: Request, ctx: CtxDep, operator: OperatorDep,
                              notification_id: NotificationId,
                              idempotency_key: KeyHeader = None) -> Response:
    """Deliver it once now, whatever its state, logged as a manual attempt by the calling
    operator; the answer has the attempt log. Acknowledged: it becomes ``delivered`` (also
    one that had been given up); otherwise its state and retry schedule are unchanged.
    403 ``operator_role_forbidden`` (auditors); 404 ``notification_not_found``; 409
    ``notification_delivery_in_progress`` (a worker is delivering it right now)."""
    require_role(operator)

    def run() -> NotificationDetailOut:
        return NotificationDetailOut.of_detail(
            service.resend(ctx, notification_id, operator.name))

    return await idem.idempotent(request, ctx.engine, ctx.clock, f"operator:{operator.id}",
                                 idempotency_key, {"notification_id": notification_id}, run)


# -- merchants ------------------------------------------------------------------------------
merchant_router = APIRouter(prefix="/merchant/notifications", tags=["merchant"],
                            responses=problem_responses(401, 403, 422))


@merchant_router.get("", response_model=NotificationPage,
                     summary="My notifications, newest first")
def my_notifications(ctx: CtxDep, merchant: MerchantDep, state: State = None,
                     cursor: Cursor = None, limit: Limit = 50) -> NotificationPage:
    items, next_cursor = service.list_notifications(
        ctx, merchant_id=merchant.id, state=state, cursor=cursor, limit=limit)
    return _page(items, next_cursor)


@merchant_router.get("/{notification_id}", response_model=NotificationDetailOut,
                     responses=problem_responses(404),
                     summary="One of my notifications and its attempts")
def my_notification(ctx: CtxDep, merchant: MerchantDep,
                    notification_id: NotificationId) -> NotificationDetailOut:
    """404 ``notification_not_found`` (also for another merchant's)."""
    return NotificationDetailOut.of_detail(
        service.get_notification(ctx, notification_id, merchant_id=merchant.id),
        for_merchant=True)


routers: list[APIRouter] = [operator_router, merchant_router]
