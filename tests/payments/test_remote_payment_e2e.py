"""Remote payment end to end over real HTTP, on both databases: the paycell app under
uvicorn on loopback, a test merchant's own HTTP server that fails its first notification
attempts, a subscriber confirming with the PIN (twice at once), retries driven by the
ManualClock along ``settings.notify_schedule``, refunds; escrow with auto-release and a
dispute settled by two operators. The ledger audit passes at the end of each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_helpers import (  # type: ignore[import-not-found]
    PIN,
    ROOT,
    Answer,
    LiveApp,
    MerchantShop,
    S,
    available,
    balance,
    count_moves,
    e2e_settings,
    fund,
    idem,
    live_app,
    moves,
    onboard,
    order_body,
    run_together,
    signed,
    subscriber,
    transfer_ids,
)
from sqlalchemy import Engine, select

from paycell.clock import ManualClock, rfc3339
from paycell.ledger.audit import audit
from paycell.notifications import delivery, service
from paycell.notifications.schedule import parse_schedule
from paycell.notifications.tables import notifications
from paycell.operators.service import create_operator
from paycell.payments.escrow import dispute_of_order
from paycell.payments.jobs import run_payment_jobs
from paycell.payments.orders import get_order

TIMEOUT_S = 1.0  # the platform's notification timeout in these tests


@pytest.fixture
def site(clock: ManualClock) -> Iterator[MerchantShop]:
    shop = MerchantShop(clock)
    try:
        yield shop
    finally:
        shop.close()


@pytest.fixture
def live(engine: Engine, db_url: str, clock: ManualClock) -> Iterator[LiveApp]:
    yield from live_app(e2e_settings(db_url, notify_timeout_s=TIMEOUT_S), engine, clock)


def _audit_ok(engine: Engine) -> None:
    report = audit(engine)
    assert report.ok, [c.detail for c in report.checks if not c.ok]


def _notification_ids(live: LiveApp) -> list[str]:
    with live.ctx.engine.connect() as conn:
        return list(conn.execute(select(notifications.c.id).order_by(notifications.c.seq))
                    .scalars())


def test_remote_payment_over_http(live: LiveApp, site: MerchantShop, clock: ManualClock,
                                  engine: Engine) -> None:
    ctx = live.ctx
    shop = onboard(ctx, "Inkwell Books", site)
    other = onboard(ctx, "Other Shop")
    buyer, auth = subscriber(ctx)
    fund(ctx, buyer, 10_000)
    # The merchant's site fails three times, in three different ways, then acknowledges.
    site.script = [Answer(500, "internal error"), Answer(200, "fail"), Answer(drop=True)]

    with live.client() as http:
        # -- the merchant asks for the payment ---------------------------------------------
        body = order_body(buyer.msisdn, "BOOK-2026-0001")
        r = http.post("/v1/payments", json=body, auth=signed(shop, clock))
        assert r.status_code == 201, r.text
        order = r.json()
        trade_no = order["trade_no"]
        assert (order["state"], order["amount_fen"], order["out_trade_no"]) == (
            "waiting", 4990, "BOOK-2026-0001")
        again = http.post("/v1/payments", json=body, auth=signed(shop, clock))
        assert (again.status_code, again.json()["trade_no"]) == (200, trade_no)
        clash = http.post("/v1/payments", json={**body, "amount_fen": 5000},
                          auth=signed(shop, clock))
        assert (clash.status_code, clash.json()["code"]) == (409, "out_trade_no_conflict")

        # -- the subscriber sees the request and confirms it, twice at once ----------------
        pending = http.get("/v1/wallet/payments/requests", headers=auth)
        assert pending.status_code == 200, pending.text
        assert [p["trade_no"] for p in pending.json()["items"]] == [trade_no]
        pay_url = f"/v1/wallet/payments/{trade_no}/confirm"

        def confirm() -> tuple[int, Any]:
            with live.client() as own:  # a connection of its own: truly concurrent
                resp = own.post(pay_url, json={"pin": PIN}, headers=auth)
                return resp.status_code, resp.json()

        results = run_together(confirm, confirm)
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert [(status, got["state"]) for status, got in results] == [(200, "paid")] * 2, \
            results
        assert all(got["paid_via"] == "wallet" for _, got in results)
        assert http.get("/v1/wallet/payments/requests", headers=auth).json()["items"] == []

        order_id = get_order(ctx, trade_no).id
        assert moves(ctx, order_id) == [(None, "waiting"), ("waiting", "paid")]
        assert transfer_ids(ctx, trade_no) == [f"pay:{trade_no}"]
        assert balance(ctx, buyer.wallet_account_id) == 10_000 - 4990
        assert balance(ctx, shop.merchant.payable_account_id) == 4990
        # Written with the state change, not sent: no worker runs in this app.
        assert site.received == []
        [nid] = _notification_ids(live)

        # -- delivery along the schedule: 500, "fail", a reset connection, then success ----
        schedule = parse_schedule(ctx.settings.notify_schedule)
        assert schedule[:3] == (15, 15, 30)  # the default, WeChat Pay's
        t0 = clock.now_us()
        assert delivery.deliver_due(ctx) == 1
        expected = [t0]
        for step in schedule[:3]:
            clock.advance(seconds=step - 1)
            assert delivery.deliver_due(ctx) == 0, "an attempt before its time"
            assert len(site.received) == len(expected)
            clock.advance(seconds=1)
            assert delivery.deliver_due(ctx) == 1
            expected.append(clock.now_us())
        assert expected == [t0, t0 + 15 * S, t0 + 30 * S, t0 + 60 * S]

        detail = service.get_notification(ctx, nid)
        n = detail.notification
        assert (n.state, n.attempts, n.delivered_at, n.next_attempt_at) == (
            "delivered", 4, t0 + 60 * S, None)
        log = detail.attempt_log
        assert [a.attempted_at for a in log] == expected
        assert [a.error for a in log] == [
            "http_status", "not_acknowledged", "transport_error", None]
        assert [a.status_code for a in log] == [500, 200, None, 200]
        assert [a.acknowledged for a in log] == [False, False, False, True]

        # What the merchant received: the same id and body each time, signed each time
        # with its webhook secret, stamped with the attempt's time.
        got = site.received
        assert [r.at_us for r in got] == expected
        assert [r.error for r in got] == [None] * 4
        assert [r.headers["webhook-id"] for r in got] == [nid] * 4
        assert [int(r.headers["webhook-timestamp"]) for r in got] == [t // S for t in expected]
        assert len({r.body for r in got}) == 1
        assert {r.path for r in got} == {"/paycell/notify"}
        doc = json.loads(got[0].body)
        assert doc == got[0].verified
        assert (doc["id"], doc["event"], doc["created_at"]) == (nid, "payment.paid",
                                                                 rfc3339(t0))
        data = doc["data"]
        assert (data["trade_no"], data["out_trade_no"], data["state"], data["amount_fen"],
                data["merchant_code"], data["paid_via"]) == (
            trade_no, "BOOK-2026-0001", "paid", 4990, shop.merchant.code, "wallet")
        assert data["payer"].count("*") == 4  # the merchant never sees the whole number

        # Nothing more is sent once acknowledged, however long we wait; a late confirm
        # (a retry from the app) changes nothing.
        clock.advance(days=1)
        assert delivery.deliver_due(ctx) == 0
        late = http.post(pay_url, json={"pin": PIN}, headers=auth)
        assert (late.status_code, late.json()["state"]) == (200, "paid")
        assert delivery.deliver_due(ctx) == 0 and len(site.received) == 4
        assert count_moves(ctx, order_id, "waiting", "paid") == 1
        assert transfer_ids(ctx, trade_no) == [f"pay:{trade_no}"]
        assert balance(ctx, buyer.wallet_account_id) == 10_000 - 4990

        # -- the merchant queries its order; another merchant cannot ------------------------
        mine = http.get(f"/v1/payments/{trade_no}", auth=signed(shop, clock))
        assert mine.status_code == 200, mine.text
        assert mine.json()["order"]["state"] == "paid"
        assert [(e["from_state"], e["to_state"]) for e in mine.json()["events"]] == [
            (None, "waiting"), ("waiting", "paid")]
        by_own_no = http.get("/v1/payments", params={"out_trade_no": "BOOK-2026-0001"},
                             auth=signed(shop, clock))
        assert [o["trade_no"] for o in by_own_no.json()["items"]] == [trade_no]
        for method, path, params in (
                ("GET", f"/v1/payments/{trade_no}", None),
                ("GET", f"/v1/payments/{trade_no}/refunds", None),
                ("GET", "/v1/payments", {"out_trade_no": "BOOK-2026-0001"})):
            theirs = http.request(method, path, params=params, auth=signed(other, clock))
            assert (theirs.status_code, theirs.json()["code"]) == (404, "order_not_found"), \
                (path, theirs.text)
        refused = http.post(f"/v1/payments/{trade_no}/refunds", auth=signed(other, clock),
                            json={"out_request_no": "STEAL-1", "amount_fen": 4990})
        assert refused.status_code == 404
        unsigned = http.get(f"/v1/payments/{trade_no}")
        assert unsigned.status_code == 401

        # -- a partial refund: notified too (the first attempt times out) -------------------
        site.script = [Answer(delay_s=TIMEOUT_S + 1.0)]
        refund_req = {"out_request_no": "RF-1", "amount_fen": 1000, "reason": "one was torn"}
        r = http.post(f"/v1/payments/{trade_no}/refunds", json=refund_req,
                      auth=signed(shop, clock))
        assert r.status_code == 200, r.text
        assert (r.json()["order"]["state"], r.json()["order"]["refundable_fen"]) == (
            "partially_refunded", 3990)
        same = http.post(f"/v1/payments/{trade_no}/refunds", json=refund_req,
                         auth=signed(shop, clock))
        assert same.json()["refund"]["refund_no"] == r.json()["refund"]["refund_no"]
        over = http.post(f"/v1/payments/{trade_no}/refunds", auth=signed(shop, clock),
                         json={"out_request_no": "RF-2", "amount_fen": 3991})
        assert (over.status_code, over.json()["code"]) == (409, "refund_exceeds_paid")
        assert balance(ctx, buyer.wallet_account_id) == 10_000 - 4990 + 1000
        assert balance(ctx, shop.merchant.payable_account_id) == 3990

        ids = _notification_ids(live)
        assert len(ids) == 2 and ids[0] == nid
        refund_nid = ids[1]
        t1 = clock.now_us()
        assert delivery.deliver_due(ctx) == 1  # times out
        clock.advance(seconds=schedule[0] - 1)
        assert delivery.deliver_due(ctx) == 0
        clock.advance(seconds=1)
        assert delivery.deliver_due(ctx) == 1  # acknowledged
        d = service.get_notification(ctx, refund_nid)
        assert d.notification.state == "delivered"
        assert [(a.attempted_at, a.error) for a in d.attempt_log] == [
            (t1, "timeout"), (t1 + schedule[0] * S, None)]
        refund_got = site.received[4:]
        assert [r.headers["webhook-id"] for r in refund_got] == [refund_nid] * 2
        assert [r.error for r in refund_got] == [None, None]
        assert refund_got[0].body == refund_got[1].body
        ev = refund_got[1].verified
        assert ev is not None and ev["event"] == "payment.partially_refunded"
        assert (ev["data"]["trade_no"], ev["data"]["refunded_fen"]) == (trade_no, 1000)
        assert service.get_notification(ctx, nid).notification.attempts == 4  # untouched

        # -- an order left unpaid past its expiry cannot be paid; the job closes it ---------
        r = http.post("/v1/payments", auth=signed(shop, clock), json=order_body(
            buyer.msisdn, "BOOK-2026-0002", expires_in_s=60))
        assert r.status_code == 201, r.text
        late = r.json()["trade_no"]
        clock.advance(seconds=60)
        r = http.post(f"/v1/wallet/payments/{late}/confirm", json={"pin": PIN}, headers=auth)
        assert (r.status_code, r.json()["code"]) == (409, "order_expired")
        assert run_payment_jobs(ctx) == 1 and run_payment_jobs(ctx) == 0
        r = http.get(f"/v1/payments/{late}", auth=signed(shop, clock))
        assert r.json()["order"]["state"] == "closed"
        assert transfer_ids(ctx, late) == []
        assert delivery.deliver_due(ctx) == 1
        assert site.received[-1].error is None and site.received[-1].verified is not None
        assert site.received[-1].verified["event"] == "payment.closed"

    assert moves(ctx, order_id) == [(None, "waiting"), ("waiting", "paid"),
                                    ("paid", "partially_refunded")]
    _audit_ok(engine)


def test_escrow_auto_release_and_dispute_over_http(live: LiveApp, site: MerchantShop,
                                                   clock: ManualClock,
                                                   engine: Engine) -> None:
    ctx = live.ctx
    shop = onboard(ctx, "Garden Tools", site)
    buyer, auth = subscriber(ctx)
    fund(ctx, buyer, 20_000)
    checker_op, checker_key = create_operator(ctx, "dispute-checker", "operator")
    checker = {"X-API-Key": checker_key}
    payable = shop.merchant.payable_account_id
    days = ctx.settings.escrow_auto_release_days
    assert days == 10

    with live.client() as http:
        def escrow_order(n: int, amount: int) -> str:
            r = http.post("/v1/payments", auth=signed(shop, clock), json=order_body(
                buyer.msisdn, f"GT-{n}", amount_fen=amount, kind="escrow"))
            assert r.status_code == 201, r.text
            trade_no = r.json()["trade_no"]
            paid = http.post(f"/v1/wallet/payments/{trade_no}/confirm", json={"pin": PIN},
                             headers=auth)
            assert paid.status_code == 200, paid.text
            assert paid.json()["state"] == "held"
            return str(trade_no)

        t0 = clock.now_us()
        e1 = escrow_order(1, 6000)  # nobody confirms receipt: auto-released
        e2 = escrow_order(2, 6000)  # disputed, then split by two operators
        e3 = escrow_order(3, 1000)  # the buyer confirms receipt
        # Held: out of the buyer's reach, not yet the merchant's.
        assert available(ctx, buyer.wallet_account_id) == 20_000 - 13_000
        assert balance(ctx, buyer.wallet_account_id) == 20_000
        assert balance(ctx, payable) == 0
        held = http.get(f"/v1/payments/{e1}", auth=signed(shop, clock)).json()["order"]
        assert held["state"] == "held" and held["release_at"] == rfc3339(t0 + days * 86_400 * S)

        r = http.post(f"/v1/wallet/payments/{e3}/receipt", json={"pin": PIN}, headers=auth)
        assert (r.status_code, r.json()["state"]) == (200, "released"), r.text
        assert balance(ctx, payable) == 1000

        clock.advance(days=3)
        r = http.post(f"/v1/wallet/payments/{e2}/dispute", headers=auth,
                      json={"reason": "the parcel never arrived"})
        assert r.status_code == 201, r.text
        dispute_id = r.json()["id"]
        assert (r.json()["trade_no"], r.json()["state"]) == (e2, "open")
        again = http.post(f"/v1/wallet/payments/{e2}/dispute", headers=auth,
                          json={"reason": "the parcel never arrived"})
        assert again.json()["id"] == dispute_id
        # A disputed order can be neither refunded by the merchant nor released.
        r = http.post(f"/v1/payments/{e2}/refunds", auth=signed(shop, clock),
                      json={"out_request_no": "X-1", "amount_fen": 6000})
        assert (r.status_code, r.json()["code"]) == (409, "order_state_invalid")

        # -- the auto-release date: not a second early, then exactly once ------------------
        clock.advance(seconds=(days - 3) * 86_400 - 1)
        assert run_payment_jobs(ctx) == 0
        clock.advance(seconds=1)
        together = run_together(lambda: run_payment_jobs(ctx), lambda: run_payment_jobs(ctx))
        assert [r for r in together if isinstance(r, BaseException)] == []
        assert sum(together) == 1
        assert run_payment_jobs(ctx) == 0 and run_payment_jobs(ctx) == 0
        clock.advance(days=10)
        assert run_payment_jobs(ctx) == 0  # the disputed one stays frozen, however long

        states = {t: http.get(f"/v1/payments/{t}", auth=signed(shop, clock)).json()["order"]
                  ["state"] for t in (e1, e2, e3)}
        assert states == {e1: "released", e2: "disputed", e3: "released"}
        o1, o2 = get_order(ctx, e1), get_order(ctx, e2)
        assert moves(ctx, o1.id) == [(None, "waiting"), ("waiting", "held"),
                                     ("held", "released")]
        assert transfer_ids(ctx, e1) == [f"pay:{e1}", f"pay:{e1}:release"]
        assert transfer_ids(ctx, e2) == [f"pay:{e2}"]
        assert balance(ctx, payable) == 1000 + 6000
        assert balance(ctx, buyer.wallet_account_id) == 20_000 - 7000
        assert available(ctx, buyer.wallet_account_id) == 20_000 - 7000 - 6000

        # -- an operator proposes a split; only a second operator can approve it ------------
        open_disputes = http.get("/v1/operator/disputes", headers=ROOT)
        assert [d["id"] for d in open_disputes.json()["items"]] == [dispute_id]
        r = http.post(f"/v1/operator/disputes/{dispute_id}/resolution", headers=ROOT,
                      json={"outcome": "split", "buyer_fen": 2500,
                            "note": "half the goods came"})
        assert r.status_code == 202, r.text
        proposal = r.json()
        approval_id = proposal["approval_id"]
        assert proposal["approve_at"] == f"/v1/approvals/{approval_id}/approve"
        assert (proposal["state"], proposal["proposed_by"]) == ("pending", "root")
        assert proposal["payload"]["buyer_fen"] == 2500

        r = http.post(f"/v1/approvals/{approval_id}/approve", headers={**ROOT, **idem()})
        assert (r.status_code, r.json()["code"]) == (403, "approval_same_operator")
        assert get_order(ctx, e2).state == "disputed"
        assert balance(ctx, payable) == 7000

        r = http.post(f"/v1/approvals/{approval_id}/approve", headers={**checker, **idem()})
        assert r.status_code == 200, r.text
        done = r.json()
        assert (done["state"], done["decided_by"]) == ("approved", checker_op.name)
        assert done["result"] == {"trade_no": e2, "state": "partially_refunded",
                                  "refunded_fen": 2500}
        r = http.post(f"/v1/approvals/{approval_id}/approve", headers={**checker, **idem()})
        assert (r.status_code, r.json()["code"]) == (409, "approval_not_pending")

        # The buyer got 2500 back, the merchant the other 3500, once.
        assert balance(ctx, payable) == 7000 + 3500
        assert balance(ctx, buyer.wallet_account_id) == 20_000 - 7000 - 3500
        assert available(ctx, buyer.wallet_account_id) == 20_000 - 7000 - 3500
        assert transfer_ids(ctx, e2) == [f"pay:{e2}", f"pay:{e2}:release"]
        d = dispute_of_order(ctx, o2.id)
        assert (d.state, d.outcome, d.buyer_fen, d.merchant_fen, d.decided_by,
                d.approved_by) == ("resolved", "split", 2500, 3500, "root", checker_op.name)
        assert moves(ctx, o2.id) == [(None, "waiting"), ("waiting", "held"),
                                     ("held", "disputed"), ("disputed", "partially_refunded")]
        mine = http.get(f"/v1/wallet/payments/{e2}", headers=auth)
        assert mine.status_code == 200, mine.text
        mine = mine.json()
        assert mine["order"]["state"] == "partially_refunded"
        assert [x["amount_fen"] for x in mine["refunds"]] == [2500]
        assert run_payment_jobs(ctx) == 0

    # Every change was notified, once, signed.
    assert delivery.deliver_due(ctx) == 7
    assert delivery.deliver_due(ctx) == 0
    assert [r.error for r in site.received] == [None] * 7
    by_order: dict[str, list[str]] = {}
    for rec in site.received:
        assert rec.verified is not None
        by_order.setdefault(rec.verified["data"]["trade_no"], []).append(
            rec.verified["event"])
    assert by_order == {
        e1: ["payment.held", "payment.released"],
        e2: ["payment.held", "payment.disputed", "payment.partially_refunded"],
        e3: ["payment.held", "payment.released"],
    }
    _audit_ok(engine)
