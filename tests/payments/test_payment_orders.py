"""Remote payment through the API: a merchant creates an order, the subscriber confirms it
in the app with the PIN; duplicates, closing, expiry, refunds and who may see what."""

from __future__ import annotations

import json

from payment_helpers import (  # type: ignore[import-not-found]
    OPERATOR,
    PIN,
    balance,
    create,
    fund,
    order_body,
    signed,
    wallet,
)
from sqlalchemy import func, select

from paycell.merchants.service import create_active_merchant
from paycell.notifications.tables import notifications
from paycell.payments.tables import payment_events, payment_orders


def _notes(ctx, trade_no=None):  # type: ignore[no-untyped-def]
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(notifications).order_by(notifications.c.seq)).all()
    out = [(r.event, json.loads(r.payload)) for r in rows]
    return [(e, p) for e, p in out if trade_no is None or p["trade_no"] == trade_no]


def _count(ctx, table) -> int:  # type: ignore[no-untyped-def]
    with ctx.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_create_confirm_pay_notifies_once(client, ctx, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, auth = wallet(ctx)
    fund(ctx, buyer, 10_000)
    r = create(client, ctx, shop, order_body(buyer.msisdn))
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["state"] == "waiting" and order["amount_fen"] == 4990
    assert order["payer"].count("*") == 4  # the merchant sees a masked number
    text = ctx.sms.last_to(buyer.msisdn)
    assert "Inkwell Books" in text and "49.90" in text

    pending = client.get("/v1/wallet/payments/requests", headers=auth).json()["items"]
    assert [p["trade_no"] for p in pending] == [order["trade_no"]]
    assert (pending[0]["merchant_name"], pending[0]["merchant_code"]) == (
        "Inkwell Books", shop.merchant.code)  # the payer sees who is asking
    r = client.post(f"/v1/wallet/payments/{order['trade_no']}/confirm",
                    json={"pin": PIN}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "paid" and r.json()["paid_via"] == "wallet"
    assert balance(ctx, buyer.wallet_account_id) == 10_000 - 4990
    assert balance(ctx, shop.merchant.payable_account_id) == 4990
    # Confirming again changes nothing (a double tap).
    again = client.post(f"/v1/wallet/payments/{order['trade_no']}/confirm",
                        json={"pin": PIN}, headers=auth)
    assert again.status_code == 200 and again.json()["state"] == "paid"
    assert balance(ctx, buyer.wallet_account_id) == 10_000 - 4990
    events = [e for e, _ in _notes(ctx, order["trade_no"])]
    assert events == ["payment.paid"]
    assert client.get("/v1/wallet/payments/requests", headers=auth).json()["items"] == []
    detail = client.get(f"/v1/payments/{order['trade_no']}", auth=signed(ctx, shop)).json()
    assert [(e["from_state"], e["to_state"]) for e in detail["events"]] == [
        (None, "waiting"), ("waiting", "paid")]


def test_duplicate_out_trade_no(client, ctx, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, _ = wallet(ctx)
    first = create(client, ctx, shop, order_body(buyer.msisdn, 7))
    same = create(client, ctx, shop, order_body(buyer.msisdn, 7))
    assert first.status_code == 201 and same.status_code == 200
    assert same.json()["trade_no"] == first.json()["trade_no"]
    other = create(client, ctx, shop, order_body(buyer.msisdn, 7, amount_fen=5000))
    assert other.status_code == 409
    assert other.json()["code"] == "out_trade_no_conflict"
    assert other.json()["field"] == "amount_fen"
    assert _count(ctx, payment_orders) == 1


def test_bad_input_is_refused_and_writes_nothing(client, ctx, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, _ = wallet(ctx)
    cases = [
        (order_body(buyer.msisdn, amount_fen=0), 422, "validation_error"),
        (order_body(buyer.msisdn, amount_fen=1.5), 422, "validation_error"),
        (order_body(buyer.msisdn, out_trade_no="has space"), 422, "validation_error"),
        (order_body(buyer.msisdn, kind="layaway"), 422, "validation_error"),
        (order_body(buyer.msisdn, notify_url="ftp://x"), 422, "payment_invalid"),
        (order_body("+8613999999999"), 422, "payer_not_found"),
        (order_body("12345"), 422, "payment_invalid"),
    ]
    for body, status, code in cases:
        r = create(client, ctx, shop, body)
        assert (r.status_code, r.json()["code"]) == (status, code), (body, r.text)
    unsigned = client.post("/v1/payments", json=order_body(buyer.msisdn))
    assert unsigned.status_code == 401
    assert _count(ctx, payment_orders) == 0 and _count(ctx, payment_events) == 0


def test_merchant_cannot_see_another_merchants_order(client, ctx, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, _ = wallet(ctx)
    other = create_active_merchant(ctx, name="Other Shop", category="retail")
    trade_no = create(client, ctx, shop, order_body(buyer.msisdn)).json()["trade_no"]
    for method, path in (("get", f"/v1/payments/{trade_no}"),
                         ("post", f"/v1/payments/{trade_no}/close"),
                         ("get", f"/v1/payments/{trade_no}/refunds")):
        r = client.request(method, path, auth=signed(ctx, other))
        assert r.status_code == 404 and r.json()["code"] == "order_not_found"
    r = client.get("/v1/payments", params={"out_trade_no": "ORD-1"}, auth=signed(ctx, other))
    assert r.status_code == 404
    # ... and another subscriber cannot see or pay it either.
    _, stranger = wallet(ctx)
    r = client.post(f"/v1/wallet/payments/{trade_no}/confirm", json={"pin": PIN},
                    headers=stranger)
    assert r.status_code == 404
    assert client.get(f"/v1/payments/{trade_no}", auth=signed(ctx, shop)).status_code == 200


def test_expired_and_closed_orders_cannot_be_paid(client, ctx, clock, shop) -> None:  # type: ignore[no-untyped-def]
    from paycell.payments.jobs import close_expired

    buyer, auth = wallet(ctx)
    fund(ctx, buyer, 10_000)
    t1 = create(client, ctx, shop, order_body(buyer.msisdn, 1)).json()["trade_no"]
    t2 = create(client, ctx, shop, order_body(buyer.msisdn, 2)).json()["trade_no"]
    closed = client.post(f"/v1/payments/{t2}/close", auth=signed(ctx, shop))
    assert closed.json()["state"] == "closed"
    clock.advance(seconds=15 * 60)
    r = client.post(f"/v1/wallet/payments/{t1}/confirm", json={"pin": PIN}, headers=auth)
    assert r.status_code == 409 and r.json()["code"] == "order_expired"
    r = client.post(f"/v1/wallet/payments/{t2}/confirm", json={"pin": PIN}, headers=auth)
    assert r.status_code == 409 and r.json()["code"] == "order_state_invalid"
    assert close_expired(ctx) == 1 and close_expired(ctx) == 0
    got = client.get(f"/v1/payments/{t1}", auth=signed(ctx, shop)).json()["order"]
    assert got["state"] == "closed" and got["closed_at"]
    assert balance(ctx, buyer.wallet_account_id) == 10_000
    assert [e for e, _ in _notes(ctx, t1)] == ["payment.closed"]


def test_insufficient_balance_changes_nothing(client, ctx, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, auth = wallet(ctx)
    fund(ctx, buyer, 1000)
    trade_no = create(client, ctx, shop, order_body(buyer.msisdn)).json()["trade_no"]
    r = client.post(f"/v1/wallet/payments/{trade_no}/confirm", json={"pin": PIN},
                    headers=auth)
    assert r.status_code == 409 and r.json()["code"] == "insufficient_balance"
    assert r.json()["available_fen"] == 1000
    wrong = client.post(f"/v1/wallet/payments/{trade_no}/confirm", json={"pin": "000000"},
                        headers=auth)
    assert wrong.status_code == 403
    order = client.get(f"/v1/payments/{trade_no}", auth=signed(ctx, shop)).json()["order"]
    assert order["state"] == "waiting" and _notes(ctx) == []
    assert balance(ctx, buyer.wallet_account_id) == 1000


def test_refunds_partial_full_and_never_more(client, ctx, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, auth = wallet(ctx)
    fund(ctx, buyer, 10_000)
    trade_no = create(client, ctx, shop, order_body(buyer.msisdn)).json()["trade_no"]
    client.post(f"/v1/wallet/payments/{trade_no}/confirm", json={"pin": PIN}, headers=auth)
    url = f"/v1/payments/{trade_no}/refunds"
    r = client.post(url, json={"out_request_no": "R1", "amount_fen": 1000}, auth=signed(ctx, shop))
    assert r.status_code == 200, r.text
    assert r.json()["order"]["state"] == "partially_refunded"
    assert r.json()["order"]["refundable_fen"] == 3990
    again = client.post(url, json={"out_request_no": "R1", "amount_fen": 1000},
                        auth=signed(ctx, shop))
    assert again.json()["refund"]["refund_no"] == r.json()["refund"]["refund_no"]
    clash = client.post(url, json={"out_request_no": "R1", "amount_fen": 999},
                        auth=signed(ctx, shop))
    assert clash.status_code == 409 and clash.json()["code"] == "out_request_no_conflict"
    over = client.post(url, json={"out_request_no": "R2", "amount_fen": 3991},
                       auth=signed(ctx, shop))
    assert over.status_code == 409 and over.json()["code"] == "refund_exceeds_paid"
    assert over.json()["refundable_fen"] == 3990
    rest = client.post(url, json={"out_request_no": "R3", "amount_fen": 3990},
                       auth=signed(ctx, shop))
    assert rest.json()["order"]["state"] == "refunded"
    assert balance(ctx, buyer.wallet_account_id) == 10_000
    assert balance(ctx, shop.merchant.payable_account_id) == 0
    more = client.post(url, json={"out_request_no": "R4", "amount_fen": 1},
                       auth=signed(ctx, shop))
    assert more.status_code == 409
    listed = client.get(url, auth=signed(ctx, shop)).json()["items"]
    assert [x["amount_fen"] for x in listed] == [1000, 3990]
    assert [e for e, _ in _notes(ctx, trade_no)] == [
        "payment.paid", "payment.partially_refunded", "payment.refunded"]


def test_refund_of_unpaid_order_is_refused(client, ctx, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, _ = wallet(ctx)
    trade_no = create(client, ctx, shop, order_body(buyer.msisdn)).json()["trade_no"]
    r = client.post(f"/v1/payments/{trade_no}/refunds",
                    json={"out_request_no": "R1", "amount_fen": 100}, auth=signed(ctx, shop))
    assert r.status_code == 409 and r.json()["code"] == "order_state_invalid"


def test_operator_sees_orders_with_history(client, ctx, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, _ = wallet(ctx)
    trade_no = create(client, ctx, shop, order_body(buyer.msisdn)).json()["trade_no"]
    assert client.get("/v1/operator/payments").status_code == 401
    page = client.get("/v1/operator/payments", headers=OPERATOR,
                      params={"merchant_id": shop.merchant.id}).json()
    assert [o["trade_no"] for o in page["items"]] == [trade_no]
    one = client.get(f"/v1/operator/payments/{trade_no}", headers=OPERATOR).json()
    assert one["events"][0]["actor"] == f"merchant:{shop.merchant.id}"


def test_default_notify_url_set_by_the_merchant(client, ctx, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, auth = wallet(ctx)
    fund(ctx, buyer, 10_000)
    bad = client.put("/v1/merchant/notify-url", json={"notify_url": "gopher://x"},
                     auth=signed(ctx, shop))
    assert bad.status_code == 422 and bad.json()["code"] == "merchant_invalid"
    r = client.put("/v1/merchant/notify-url", json={"notify_url": "https://shop.example/n"},
                   auth=signed(ctx, shop))
    assert r.status_code == 200, r.text
    body = order_body(buyer.msisdn)
    body.pop("notify_url", None)
    trade_no = create(client, ctx, shop, body).json()["trade_no"]
    client.post(f"/v1/wallet/payments/{trade_no}/confirm", json={"pin": PIN}, headers=auth)
    with ctx.engine.connect() as conn:
        urls = conn.execute(select(notifications.c.url)).scalars().all()
    assert urls == ["https://shop.example/n"]
