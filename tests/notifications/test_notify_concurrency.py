"""Several deliverers at once never deliver one notification twice concurrently: each is
attempted exactly once per due time, whoever gets it. PostgreSQL (SKIP LOCKED) is the case
that matters; SQLite (one writer at a time) must hold too."""

from __future__ import annotations

import threading
from collections import Counter

from notify_helpers import (  # type: ignore[import-not-found]
    Answer,
    MerchantServer,
    Received,
    clock,
    make_settings,
    merchant_server,
    new_merchant,
    notify,
)

from paycell.clock import ManualClock
from paycell.context import Context, build_context
from paycell.db import make_engine
from paycell.notifications import delivery, service

__all__ = ["clock", "merchant_server"]
WORKERS = 3
COUNT = 24


def _run_together(contexts: list[Context]) -> list[int]:
    barrier = threading.Barrier(len(contexts))
    made = [0] * len(contexts)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            made[i] = delivery.deliver_due(contexts[i])
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(contexts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return made


def test_concurrent_deliverers_never_double_deliver(
        db_url: str, clock: ManualClock, merchant_server: MerchantServer) -> None:
    srv = merchant_server
    # Each worker process has its own engine; they share the database and the clock.
    engines = [make_engine(db_url) for _ in range(WORKERS)]
    try:
        contexts = [build_context(e, settings=make_settings(db_url), clock=clock)
                    for e in engines]
        mid = new_merchant(contexts[0], srv)
        in_flight: Counter[str] = Counter()
        overlaps: list[str] = []
        lock = threading.Lock()

        def slow(rec: Received) -> None:  # keep each delivery open a little
            nid = rec.headers["webhook-id"]
            with lock:
                in_flight[nid] += 1
                if in_flight[nid] > 1:
                    overlaps.append(nid)
            threading.Event().wait(0.01)
            with lock:
                in_flight[nid] -= 1

        srv.on_request = slow
        # The first attempt of every notification fails, the retry is acknowledged.
        srv.script = [Answer(500, "no")] * COUNT
        ids = [notify(contexts[0], mid, srv.url, data={"n": i}) for i in range(COUNT)]

        assert sum(_run_together(contexts)) == COUNT
        assert sorted(srv.ids()) == sorted(ids)  # each exactly once
        clock.advance(seconds=15)
        assert sum(_run_together(contexts)) == COUNT
        assert Counter(srv.ids()) == Counter({i: 2 for i in ids})
        assert overlaps == []
        assert all(r.error is None for r in srv.received)
        for nid in ids:
            d = service.get_notification(contexts[0], nid)
            assert d.notification.state == "delivered"
            assert [a.acknowledged for a in d.attempt_log] == [False, True]
        clock.advance(days=1)
        assert sum(_run_together(contexts)) == 0
    finally:
        for e in engines:
            e.dispose()


def test_worker_and_operator_at_once(db_url: str, clock: ManualClock,
                                     merchant_server: MerchantServer) -> None:
    """An operator's re-send and a worker's run race for the same notification: exactly
    one delivers it; the other is told it is busy (or finds nothing due)."""
    engine = make_engine(db_url)
    try:
        ctx = build_context(engine, settings=make_settings(db_url), clock=clock)
        mid = new_merchant(ctx, merchant_server)
        nid = notify(ctx, mid, merchant_server.url)
        barrier = threading.Barrier(2)
        outcome: dict[str, object] = {}

        def worker() -> None:
            barrier.wait()
            outcome["worker"] = delivery.deliver_due(ctx)

        def operator() -> None:
            barrier.wait()
            try:
                service.resend(ctx, nid, "alice")
                outcome["operator"] = "sent"
            except service.NotificationBusyError:
                outcome["operator"] = "busy"

        threads = [threading.Thread(target=worker), threading.Thread(target=operator)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        sent = int(outcome["worker"] == 1) + int(outcome["operator"] == "sent")
        # Whoever came second either found it busy or (after the first finished) resent it.
        assert 1 <= sent == len(merchant_server.received) <= 2
        assert service.get_notification(ctx, nid).notification.state == "delivered"
    finally:
        engine.dispose()
