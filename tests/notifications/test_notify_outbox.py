"""The outbox: a notification exists exactly when the caller's transaction commits; its
id, stored payload and URL checks; reading by id and by merchant."""

from __future__ import annotations

import pytest
from notify_helpers import clock, ctx, notify  # type: ignore[import-not-found]
from sqlalchemy import func, select

from paycell.context import Context
from paycell.funding.cash_common import CursorInvalidError
from paycell.notifications import service
from paycell.notifications.tables import notifications

__all__ = ["clock", "ctx"]


def count(ctx: Context) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(notifications)).scalar_one())


def test_written_in_the_callers_transaction(ctx: Context) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), ctx.engine.begin() as conn:
        service.enqueue(conn, merchant_id=7, event="payment.succeeded", payload={"a": 1},
                        url="https://shop.example/notify", now_us=ctx.clock.now_us())
        raise Boom  # the business change fails: no notification either
    assert count(ctx) == 0
    with ctx.engine.begin() as conn:
        nid = service.enqueue(conn, merchant_id=7, event="payment.succeeded",
                              payload={"amount_fen": 1230, "subject": "两本书"},
                              url="https://shop.example/notify", now_us=ctx.clock.now_us())
    assert count(ctx) == 1
    assert nid.startswith("ntf_") and len(nid) == 28
    n = service.get_notification(ctx, nid).notification
    assert (n.merchant_id, n.state, n.attempts, n.next_attempt_at, n.delivered_at) == (
        7, "pending", 0, ctx.clock.now_us(), None)
    assert n.data == {"amount_fen": 1230, "subject": "两本书"}
    assert service.get_notification(ctx, nid).attempt_log == ()


@pytest.mark.parametrize("url", ["ftp://shop.example/n", "/relative", "https://", "",
                                 "http://shop.example/a b", "https://x.example/" + "a" * 2048])
def test_bad_urls_refused(ctx: Context, url: str) -> None:
    with pytest.raises(service.NotifyUrlInvalidError), ctx.engine.begin() as conn:
        service.enqueue(conn, merchant_id=1, event="e", payload={}, url=url, now_us=0)
    assert count(ctx) == 0


def test_get_and_list_by_merchant(ctx: Context) -> None:
    a = [notify(ctx, 1, "http://127.0.0.1:9/a", data={"i": i}) for i in range(5)]
    b = notify(ctx, 2, "http://127.0.0.1:9/b")
    with pytest.raises(service.NotificationNotFoundError):
        service.get_notification(ctx, b, merchant_id=1)
    assert service.get_notification(ctx, b, merchant_id=2).notification.id == b
    items, cursor = service.list_notifications(ctx, merchant_id=1, limit=3)
    assert [n.id for n in items] == a[::-1][:3] and cursor is not None
    items, cursor = service.list_notifications(ctx, merchant_id=1, limit=3, cursor=cursor)
    assert [n.id for n in items] == a[::-1][3:] and cursor is None
    items, _ = service.list_notifications(ctx, state="delivered")
    assert items == []
    with pytest.raises(CursorInvalidError):
        service.list_notifications(ctx, cursor="bm90IG1pbmU")
    with pytest.raises(service.InvalidRequestError):
        service.list_notifications(ctx, state="lost")
