"""Request and response models of the notification routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from paycell.clock import rfc3339
from paycell.notifications.service import Attempt, Notification, NotificationDetail


def _t(us: int | None) -> str | None:
    return None if us is None else rfc3339(us)


class AttemptOut(BaseModel):
    attempted_at: str = Field(examples=["2026-01-01T00:00:15Z"])
    status_code: int | None = Field(description="the merchant's HTTP status; null when no "
                                    "HTTP answer came")
    error: str | None = Field(
        description="null when acknowledged; otherwise http_status, not_acknowledged, "
        "timeout, connection_failed, transport_error, invalid_url, no_webhook_secret, "
        "merchant_unavailable", examples=["not_acknowledged"])
    acknowledged: bool
    latency_ms: int
    response_snippet: str | None = Field(description="the first 500 characters answered")
    manual: bool = Field(description="re-sent by hand by an operator")
    operator: str | None = Field(description="who re-sent it (operators' view only)")

    @classmethod
    def of(cls, a: Attempt, *, for_merchant: bool = False) -> AttemptOut:
        return cls(attempted_at=rfc3339(a.attempted_at), status_code=a.status_code,
                   error=a.error, acknowledged=a.acknowledged, latency_ms=a.latency_ms,
                   response_snippet=a.response_snippet, manual=a.manual,
                   operator=None if for_merchant else a.operator)


class NotificationOut(BaseModel):
    id: str = Field(examples=["ntf_5f0c3e8a9b1d2c4e6f7a8b9c"])
    merchant_id: int
    event: str = Field(examples=["payment.succeeded"])
    url: str
    state: str = Field(description="pending, delivering, delivered or failed (given up)")
    attempts: int
    next_attempt_at: str | None
    created_at: str
    delivered_at: str | None
    data: dict[str, Any]

    @classmethod
    def of(cls, n: Notification) -> NotificationOut:
        return cls(id=n.id, merchant_id=n.merchant_id, event=n.event, url=n.url,
                   state=n.state, attempts=n.attempts, next_attempt_at=_t(n.next_attempt_at),
                   created_at=rfc3339(n.created_at), delivered_at=_t(n.delivered_at),
                   data=n.data)


class NotificationDetailOut(NotificationOut):
    attempt_log: list[AttemptOut] = Field(description="every attempt, oldest first")

    @classmethod
    def of_detail(cls, d: NotificationDetail, *,
                  for_merchant: bool = False) -> NotificationDetailOut:
        base = NotificationOut.of(d.notification).model_dump()
        return cls(**base, attempt_log=[AttemptOut.of(a, for_merchant=for_merchant)
                                        for a in d.attempt_log])


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None
