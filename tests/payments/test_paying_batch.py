"""Orders paid from wallets many at once (payments/paying_batch.py): a batch answers as the
same confirmations one after another would; the API's desk batches concurrent ones."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from payment_helpers import PIN, balance, fund, wallet  # type: ignore[import-not-found]
from sqlalchemy import select

from paycell.context import Context
from paycell.ledger.audit import audit
from paycell.merchants.model import OnboardedMerchant
from paycell.notifications.tables import notifications
from paycell.payments import orders
from paycell.payments.paying_batch import PayCommand, pay_batch
from paycell.subscribers.lifecycle import freeze
from paycell.subscribers.service import Subscriber, get_subscriber

# A confirmation: (payer 0-2, order 0-5, PIN: right / wrong / already checked)
confirms = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 5),
                              st.sampled_from([PIN, "918273", None])),
                    min_size=1, max_size=10)
funds = st.lists(st.integers(0, 60_000), min_size=3, max_size=3)
# Orders: (payer 0-2, amount, escrow)
order_specs = st.lists(st.tuples(st.integers(0, 2), st.integers(1, 60_000), st.booleans()),
                       min_size=6, max_size=6)


def _world(ctx: Context, shop: OnboardedMerchant, balances: list[int],
           specs: list[tuple[int, int, bool]]) -> tuple[list[Subscriber], list[orders.Order]]:
    payers = []
    for i, amount in enumerate(balances):
        sub, _ = wallet(ctx)
        if amount:
            fund(ctx, sub, amount)
        if i == 2:
            freeze(ctx, sub.id, "test")
        payers.append(get_subscriber(ctx, sub.id))
    made = [orders.create_order(ctx, shop.merchant, orders.OrderRequest(
        out_trade_no=f"B-{uuid.uuid4().hex}", amount_fen=amount, subject="batch",
        payer_msisdn=payers[p].msisdn, kind="escrow" if escrow else "direct"),
        text_code=False)[0] for p, amount, escrow in specs]
    return payers, made


def _cmds(world: Any, spec: list[tuple[int, int, str | None]]) -> list[PayCommand]:
    payers, made = world
    return [PayCommand(payers[p], made[o].trade_no, pin) for p, o, pin in spec]


def _seen(ctx: Context, world: Any, paid: list[Any]) -> Any:
    payers, made = world
    said = [(p.error.code, sorted((p.error.detail or {}).items())) if p.error else
            (made.index(next(o for o in made if o.trade_no == p.order.trade_no)),
             p.order.state, p.order.paid_via) for p in paid]
    after = [(o.state, o.paid_via) for o in (orders.get_order(ctx, m.trade_no) for m in made)]
    return said, after, [balance(ctx, s.wallet_account_id) for s in payers]


@hsettings(max_examples=15, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(balances=funds, specs=order_specs, spec=confirms)
def test_a_batch_answers_as_the_confirmations_one_by_one(
        client: TestClient, ctx: Context, shop: OnboardedMerchant, balances: list[int],
        specs: list[Any], spec: list[Any]) -> None:
    together, alone = _world(ctx, shop, balances, specs), _world(ctx, shop, balances, specs)
    batched = pay_batch(ctx, _cmds(together, spec))
    one_by_one = [pay_batch(ctx, [c])[0] for c in _cmds(alone, spec)]
    assert _seen(ctx, together, batched) == _seen(ctx, alone, one_by_one)


def test_the_desk_pays_concurrent_confirmations_once(client: TestClient, ctx: Context,
                                                     shop: OnboardedMerchant) -> None:
    """Thirty confirmations in flight at once, each sent twice with its key: every order is
    paid once, both copies hear the same, and each paid order notifies its merchant once."""
    buyers = [wallet(ctx) for _ in range(6)]
    for sub, _ in buyers:
        fund(ctx, sub, 50_000)
    plan = []
    for i in range(30):
        sub, auth = buyers[i % 6]
        order, _ = orders.create_order(ctx, shop.merchant, orders.OrderRequest(
            out_trade_no=f"D-{i}", amount_fen=1_000 + i, subject="desk",
            payer_msisdn=sub.msisdn), text_code=False)
        plan.append((f"/v1/wallet/payments/{order.trade_no}/confirm",
                     {**auth, "Idempotency-Key": str(uuid.uuid4())}))

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as hx:
            return list(await asyncio.gather(*(hx.post(path, json={"pin": PIN}, headers=h)
                                               for path, h in plan * 2)))

    replies = client.portal.call(go)  # type: ignore[union-attr]
    assert {r.status_code for r in replies} == {200}, replies[0].text
    assert all(r.json()["state"] == "paid" for r in replies)
    assert [r.json() for r in replies[:30]] == [r.json() for r in replies[30:]]
    assert sum(balance(ctx, s.wallet_account_id) for s, _ in buyers) == (
        6 * 50_000 - sum(1_000 + i for i in range(30)))
    with ctx.engine.connect() as conn:
        sent = conn.execute(select(notifications.c.event).where(
            notifications.c.merchant_id == shop.merchant.id)).scalars().all()
    assert sent.count("payment.paid") == 30
    desk = client.app.state.desks["payments"]  # type: ignore[attr-defined]
    assert desk.items == 60 and desk.batches < 60
    assert audit(ctx.engine).ok


def test_paying_kills_the_texted_codes_of_the_orders_paid_and_no_others(
        ctx: Context, shop: OnboardedMerchant) -> None:
    from paycell.payments.tables import sms_confirmations

    payer, _ = wallet(ctx)
    fund(ctx, payer, 10_000)
    payer = get_subscriber(ctx, payer.id)
    made = [orders.create_order(ctx, shop.merchant, orders.OrderRequest(
        out_trade_no=f"K-{uuid.uuid4().hex}", amount_fen=100, subject="codes",
        payer_msisdn=payer.msisdn))[0] for _ in range(3)]
    paid = pay_batch(ctx, [PayCommand(payer, made[0].trade_no, PIN),
                           PayCommand(payer, made[2].trade_no, PIN)])
    assert [p.unwrap().state for p in paid] == ["paid", "paid"]
    with ctx.engine.connect() as conn:
        states = dict(conn.execute(select(sms_confirmations.c.order_id,
                                          sms_confirmations.c.state)).all())
    assert [states[o.id] for o in made] == ["dead", "open", "dead"]
