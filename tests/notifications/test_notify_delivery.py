"""Delivery over real HTTP to a loopback merchant, on both databases, with the driven clock:
retry timing against the schedule, signatures on every attempt, a stable id, the attempt
log, giving up, failure kinds, and a crashed worker's lease."""

from __future__ import annotations

import pytest
from notify_helpers import (  # type: ignore[import-not-found]
    Answer,
    MerchantServer,
    clock,
    closed_port_url,
    ctx,
    loads,
    make_settings,
    merchant_server,
    new_merchant,
    notify,
)
from sqlalchemy import Engine

from paycell.clock import ManualClock, rfc3339
from paycell.context import Context, build_context
from paycell.notifications import delivery, service
from paycell.worker import Worker

S = 1_000_000
__all__ = ["clock", "ctx", "merchant_server"]


def test_fails_twice_then_acknowledged_on_schedule(ctx: Context, clock: ManualClock,
                                                    merchant_server: MerchantServer) -> None:
    srv = merchant_server
    mid = new_merchant(ctx, srv)
    srv.script = [Answer(500, "oops"), Answer(200, "FAIL")]
    t0 = clock.now_us()
    nid = notify(ctx, mid, srv.url, data={"out_trade_no": "T1", "amount_fen": 1230})
    assert nid.startswith("ntf_")

    assert delivery.deliver_due(ctx) == 1  # t0: 500
    n = service.get_notification(ctx, nid).notification
    assert (n.state, n.attempts, n.next_attempt_at) == ("pending", 1, t0 + 15 * S)
    clock.advance(seconds=14)
    assert delivery.deliver_due(ctx) == 0  # not due yet
    clock.advance(seconds=1)
    assert delivery.deliver_due(ctx) == 1  # t0+15s: 200 but not "success"
    n = service.get_notification(ctx, nid).notification
    assert (n.state, n.next_attempt_at) == ("pending", t0 + (15 + 180) * S)
    clock.advance(seconds=179)
    assert delivery.deliver_due(ctx) == 0
    clock.advance(seconds=1)
    assert delivery.deliver_due(ctx) == 1  # t0+195s: acknowledged

    detail = service.get_notification(ctx, nid)
    n = detail.notification
    assert (n.state, n.attempts, n.next_attempt_at) == ("delivered", 3, None)
    assert n.delivered_at == t0 + 195 * S
    log = detail.attempt_log
    assert [a.attempted_at for a in log] == [t0, t0 + 15 * S, t0 + 195 * S]
    assert [a.status_code for a in log] == [500, 200, 200]
    assert [a.error for a in log] == ["http_status", "not_acknowledged", None]
    assert [a.acknowledged for a in log] == [False, False, True]
    assert [a.response_snippet for a in log] == ["oops", "FAIL", "success"]
    assert all(not a.manual and a.latency_ms >= 0 for a in log)

    # Every attempt: the same id and body, signed, stamped with the attempt's time.
    assert srv.ids() == [nid] * 3
    assert [r.error for r in srv.received] == [None] * 3
    assert len({r.body for r in srv.received}) == 1
    assert [int(r.headers["webhook-timestamp"]) for r in srv.received] == [
        t0 // S, t0 // S + 15, t0 // S + 195]
    assert loads(srv.received[0].body) == {
        "id": nid, "event": "payment.succeeded", "created_at": rfc3339(t0),
        "data": {"out_trade_no": "T1", "amount_fen": 1230}}
    assert srv.received[0].headers["content-type"] == "application/json"

    clock.advance(days=2)
    assert delivery.deliver_due(ctx) == 0
    assert len(srv.received) == 3


def test_acknowledgement_ignores_case_and_whitespace(ctx: Context,
                                                    merchant_server: MerchantServer) -> None:
    srv = merchant_server
    mid = new_merchant(ctx, srv)
    srv.script = [Answer(204, ""), Answer(201, "  Success\r\n")]
    nid = notify(ctx, mid, srv.url)
    assert delivery.deliver_due(ctx) == 1
    ctx.clock.advance(seconds=15)  # type: ignore[attr-defined]
    assert delivery.deliver_due(ctx) == 1
    d = service.get_notification(ctx, nid)
    assert d.notification.state == "delivered"
    assert [(a.status_code, a.error) for a in d.attempt_log] == [
        (204, "not_acknowledged"), (201, None)]


def test_gives_up_after_the_schedule(ctx: Context, clock: ManualClock,
                                     merchant_server: MerchantServer) -> None:
    srv = merchant_server
    mid = new_merchant(ctx, srv)
    srv.script = [Answer(503, "busy")] * 10
    t0 = clock.now_us()
    nid = notify(ctx, mid, srv.url)
    times = []
    for step in (0, 15, 180, 3600):  # first attempt, then one retry per schedule step
        clock.advance(seconds=step - 1) if step else None
        if step:
            assert delivery.deliver_due(ctx) == 0
            clock.advance(seconds=1)
        assert delivery.deliver_due(ctx) == 1
        times.append(clock.now_us())
    n = service.get_notification(ctx, nid).notification
    assert (n.state, n.attempts, n.next_attempt_at) == ("failed", 4, None)
    assert times == [t0, t0 + 15 * S, t0 + 195 * S, t0 + 3795 * S]
    clock.advance(days=30)
    assert delivery.deliver_due(ctx) == 0
    assert srv.ids() == [nid] * 4
    assert all(r.error is None for r in srv.received)


def test_manual_resend_after_giving_up(ctx: Context, clock: ManualClock,
                                       merchant_server: MerchantServer) -> None:
    srv = merchant_server
    mid = new_merchant(ctx, srv)
    ctx.settings = make_settings(ctx.settings.database_url, notify_schedule="15s")
    srv.script = [Answer(500, "down"), Answer(500, "down"), Answer(502, "still down")]
    nid = notify(ctx, mid, srv.url)
    delivery.deliver_due(ctx)
    clock.advance(seconds=15)
    delivery.deliver_due(ctx)
    assert service.get_notification(ctx, nid).notification.state == "failed"

    # A resend that fails too leaves it given up.
    d = service.resend(ctx, nid, "alice")
    assert d.notification.state == "failed"
    assert (d.attempt_log[-1].manual, d.attempt_log[-1].operator) == (True, "alice")
    assert d.attempt_log[-1].status_code == 502
    # The merchant is back: the resend delivers it.
    clock.advance(hours=5)
    d = service.resend(ctx, nid, "bob")
    n = d.notification
    assert (n.state, n.attempts, n.delivered_at) == ("delivered", 4, clock.now_us())
    assert [(a.manual, a.operator, a.acknowledged) for a in d.attempt_log] == [
        (False, None, False), (False, None, False), (True, "alice", False), (True, "bob", True)]
    assert srv.ids() == [nid] * 4 and all(r.error is None for r in srv.received)
    # Resending a delivered one sends it again (the merchant asked) and it stays delivered.
    assert service.resend(ctx, nid, "bob").notification.state == "delivered"
    assert len(srv.received) == 5


def test_manual_resend_keeps_the_schedule(ctx: Context, clock: ManualClock,
                                          merchant_server: MerchantServer) -> None:
    srv = merchant_server
    mid = new_merchant(ctx, srv)
    srv.script = [Answer(500), Answer(500)]
    t0 = clock.now_us()
    nid = notify(ctx, mid, srv.url)
    delivery.deliver_due(ctx)
    clock.advance(seconds=5)
    d = service.resend(ctx, nid, "alice")
    assert (d.notification.state, d.notification.next_attempt_at) == ("pending", t0 + 15 * S)
    clock.advance(seconds=10)
    assert delivery.deliver_due(ctx) == 1  # the schedule's retry, as planned
    assert service.get_notification(ctx, nid).notification.state == "delivered"


def test_resend_refusals(ctx: Context, merchant_server: MerchantServer) -> None:
    with pytest.raises(service.NotificationNotFoundError):
        service.resend(ctx, "ntf_nope", "alice")
    mid = new_merchant(ctx, merchant_server)
    nid = notify(ctx, mid, merchant_server.url)
    held = delivery._claim(ctx, delivery._due(ctx.clock.now_us()))  # a worker is on it
    assert held is not None and held.id == nid
    with pytest.raises(service.NotificationBusyError):
        service.resend(ctx, nid, "alice")
    assert merchant_server.received == []


def test_crashed_worker_lease_expires(ctx: Context, clock: ManualClock,
                                      merchant_server: MerchantServer) -> None:
    mid = new_merchant(ctx, merchant_server)
    nid = notify(ctx, mid, merchant_server.url)
    crashed = delivery._claim(ctx, delivery._due(clock.now_us()))  # and then it died
    assert crashed is not None
    assert service.get_notification(ctx, nid).notification.state == "delivering"
    assert delivery.deliver_due(ctx) == 0
    clock.advance(seconds=delivery.lease_us(ctx) // S - 1)
    assert delivery.deliver_due(ctx) == 0
    clock.advance(seconds=1)
    assert delivery.deliver_due(ctx) == 1
    d = service.get_notification(ctx, nid)
    assert (d.notification.state, len(d.attempt_log)) == ("delivered", 1)
    assert merchant_server.ids() == [nid]


@pytest.mark.parametrize("kind", ["timeout", "connection_failed", "transport_error",
                                  "http_status", "not_acknowledged", "no_webhook_secret"])
def test_failure_kinds(kind: str, engine: Engine, db_url: str, clock: ManualClock,
                       merchant_server: MerchantServer) -> None:
    ctx = build_context(engine, clock=clock,
                        settings=make_settings(db_url, notify_timeout_s=0.3))
    srv = merchant_server
    mid = new_merchant(ctx, srv)
    url = srv.url
    srv.script = [{"timeout": Answer(delay_s=1.5), "transport_error": Answer(close=True),
                   "http_status": Answer(404, "no such page " + "x" * 900),
                   "not_acknowledged": Answer(200, '{"ok":true}')}.get(kind, Answer())]
    if kind == "connection_failed":
        url = closed_port_url()
    if kind == "no_webhook_secret":
        mid = 987_654  # no such merchant: nothing to sign with, so nothing is sent
    nid = notify(ctx, mid, url)
    assert delivery.deliver_due(ctx) == 1
    d = service.get_notification(ctx, nid)
    a = d.attempt_log[0]
    assert (a.error, a.acknowledged, a.manual) == (kind, False, False)
    assert d.notification.state == "pending"
    assert d.notification.next_attempt_at == clock.now_us() + 15 * S
    if kind in ("http_status", "not_acknowledged"):
        assert a.status_code == (404 if kind == "http_status" else 200)
        assert a.response_snippet is not None and len(a.response_snippet) <= 500
    else:
        assert a.status_code is None
    if kind == "http_status":
        assert a.response_snippet == ("no such page " + "x" * 900)[:500]
    expected_requests = 0 if kind in ("connection_failed", "no_webhook_secret") else 1
    assert len(srv.received) == expected_requests


def test_the_worker_runs_the_job(ctx: Context, merchant_server: MerchantServer) -> None:
    mid = new_merchant(ctx, merchant_server)
    nid = notify(ctx, mid, merchant_server.url)
    done = Worker(ctx.ledger, ctx.settings, ctx=ctx).run_once()
    assert done["notifications"] == 1
    assert service.get_notification(ctx, nid).notification.state == "delivered"


def test_batch_bound(engine: Engine, db_url: str, clock: ManualClock,
                     merchant_server: MerchantServer) -> None:
    ctx = build_context(engine, clock=clock, settings=make_settings(db_url, notify_batch=3))
    mid = new_merchant(ctx, merchant_server)
    for _ in range(5):
        notify(ctx, mid, merchant_server.url)
    assert delivery.deliver_due(ctx) == 3
    assert delivery.deliver_due(ctx) == 2
    assert delivery.deliver_due(ctx) == 0
