"""Paying an order from a bound bank card or the phone bill, through the loopback bank and
carrier simulators over real HTTP: charged once, paid once, unknown answers wait."""

from __future__ import annotations

from funding_helpers import (  # type: ignore[import-not-found]
    GOOD_CARD,
    PIN,
    POOR_CARD,
    balance,
    bind_card,
    client,
    clock,
    ctx,
    settings,
    sims,
    wallet,
)
from payment_helpers import create, order_body  # type: ignore[import-not-found]

from paycell.funding.jobs import resolve_pending
from paycell.payments.jobs import run_payment_jobs

__all__ = ["client", "clock", "ctx", "settings", "sims"]


def _confirm(client, trade_no, auth, **body):  # type: ignore[no-untyped-def]
    return client.post(f"/v1/wallet/payments/{trade_no}/confirm",
                       json={"pin": PIN, **body}, headers=auth)


def test_pay_with_a_card_charges_it_once(client, ctx, sims, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, auth = wallet(ctx)
    bind_card(client, ctx, buyer, auth)
    before = sims.card(GOOD_CARD)["balance_fen"]
    trade_no = create(client, ctx, shop, order_body(buyer.msisdn)).json()["trade_no"]
    r = _confirm(client, trade_no, auth, source="card")
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["paid_via"]) == ("paid", "card")
    again = _confirm(client, trade_no, auth, source="card")
    assert again.json()["state"] == "paid"
    assert sims.card(GOOD_CARD)["balance_fen"] == before - 4990
    assert balance(ctx, buyer) == 0
    assert ctx.ledger.account(shop.merchant.payable_account_id).balance == 4990


def test_a_refused_card_pays_nothing(client, ctx, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, auth = wallet(ctx)
    bind_card(client, ctx, buyer, auth, POOR_CARD)
    trade_no = create(client, ctx, shop, order_body(buyer.msisdn)).json()["trade_no"]
    r = _confirm(client, trade_no, auth, source="card")
    assert r.status_code == 409 and r.json()["code"] == "funding_failed"
    assert r.json()["reason"]
    order = client.get(f"/v1/wallet/payments/{trade_no}", headers=auth).json()["order"]
    assert order["state"] == "waiting" and not order["funding_pending"]


def test_a_slow_bank_pays_the_order_when_it_answers(client, ctx, clock, sims, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, auth = wallet(ctx)
    bind_card(client, ctx, buyer, auth)
    trade_no = create(client, ctx, shop, order_body(buyer.msisdn)).json()["trade_no"]
    sims.next_bank(GOOD_CARD, "timeout")
    r = _confirm(client, trade_no, auth, source="card")
    assert r.status_code == 200 and r.json()["state"] == "waiting"
    assert r.json()["funding_pending"] is True
    clock.advance(seconds=ctx.settings.payment_default_expiry_s + 60)
    assert run_payment_jobs(ctx) == 0  # waits for the bank, not closed
    assert resolve_pending(ctx) == 1  # the bank confirms the top-up
    assert run_payment_jobs(ctx) == 1  # ...but the order expired meanwhile: closed
    order = client.get(f"/v1/wallet/payments/{trade_no}", headers=auth).json()["order"]
    assert order["state"] == "closed"
    assert balance(ctx, buyer) == 4990  # the money stays in the wallet


def test_pay_with_the_phone_bill(client, ctx, sims, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, auth = wallet(ctx)
    sims.line(buyer.msisdn, kind="postpaid")
    trade_no = create(client, ctx, shop, order_body(buyer.msisdn, amount_fen=1500)).json()[
        "trade_no"]
    r = _confirm(client, trade_no, auth, source="phone_bill")
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["paid_via"]) == ("paid", "phone_bill")
    assert balance(ctx, buyer) == 0
