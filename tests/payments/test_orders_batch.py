"""Payment orders created many at once (payments/orders_batch.py): a batch answers as the same
requests one after another would; the API's desk batches concurrent ones."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from payment_helpers import signed, wallet  # type: ignore[import-not-found]
from sqlalchemy import func, select

from paycell.context import Context
from paycell.merchants import auth as merchant_auth
from paycell.merchants import onboarding
from paycell.merchants.credentials import issue_credential, revoke_credential
from paycell.merchants.model import OnboardedMerchant
from paycell.merchants.service import create_active_merchant
from paycell.merchants.signing import sign_headers
from paycell.operators.service import ensure_operator
from paycell.payments import orders
from paycell.payments.orders_batch import CreateCommand, create_batch
from paycell.payments.tables import payment_orders, sms_confirmations

# A request: (out_trade_no 0-3, payer: a wallet / no wallet / not a number, amount, subject ok)
requests = st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["wallet", "none", "bad"]),
                              st.sampled_from([0, 1, 4_990]), st.booleans()),
                    min_size=1, max_size=8)


def _world(ctx: Context) -> tuple[OnboardedMerchant, str]:
    """A merchant whose out_trade_no 0 is taken by an earlier order, and a payer."""
    shop = create_active_merchant(ctx, name="Batch Books", category="books")
    payer, _ = wallet(ctx)
    orders.create_order(ctx, shop.merchant, orders.OrderRequest(
        out_trade_no="N-0", amount_fen=4_990, subject="earlier", payer_msisdn=payer.msisdn),
        text_code=False)
    return shop, payer.msisdn


def _cmds(world: tuple[OnboardedMerchant, str], spec: list[Any]) -> list[CreateCommand]:
    shop, payer = world
    seen, out = set(), []
    for n, who, amount, subject_ok in spec:
        if n in seen:  # a batch holds an out_trade_no once
            continue
        seen.add(n)
        number = {"wallet": payer, "none": "+8613900000000", "bad": "12"}[who]
        out.append(CreateCommand(shop.merchant, orders.OrderRequest(
            out_trade_no=f"N-{n}", amount_fen=amount, subject="earlier" if subject_ok else " ",
            payer_msisdn=number)))
    return out


def _seen(ctx: Context, world: tuple[OnboardedMerchant, str], made: list[Any]) -> Any:
    shop, _ = world
    said = [(m.error.code, m.error.detail.get("field")) if m.error else
            (m.created, m.order.out_trade_no, m.order.amount_fen, m.order.state) for m in made]
    with ctx.engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(payment_orders).where(
            payment_orders.c.merchant_id == shop.merchant.id)).scalar_one()
        codes = conn.execute(select(func.count()).select_from(sms_confirmations).join(
            payment_orders, payment_orders.c.id == sms_confirmations.c.order_id).where(
            payment_orders.c.merchant_id == shop.merchant.id)).scalar_one()
    return said, n, codes


@hsettings(max_examples=15, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=requests)
def test_a_batch_answers_as_the_requests_one_by_one(client: TestClient, ctx: Context,
                                                    spec: list[Any]) -> None:
    together, alone = _world(ctx), _world(ctx)
    batched = create_batch(ctx, _cmds(together, spec))
    one_by_one = [create_batch(ctx, [c])[0] for c in _cmds(alone, spec)]
    assert _seen(ctx, together, batched) == _seen(ctx, alone, one_by_one)


def test_the_desk_creates_concurrent_orders_once(client: TestClient, ctx: Context) -> None:
    """Thirty orders in flight at once, each sent twice with its key, and five sent again
    under new keys: thirty orders, every copy answered with its own order."""
    shop = create_active_merchant(ctx, name="Desk Books", category="books")
    payer, _ = wallet(ctx)
    bodies = [{"out_trade_no": f"D-{i}", "amount_fen": 100 + i, "subject": "desk",
               "payer_msisdn": payer.msisdn} for i in range(30)]
    plan = [(b, str(uuid.uuid4())) for b in bodies]
    plan += plan + [(b, str(uuid.uuid4())) for b in bodies[:5]]
    auth = signed(ctx, shop)

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as hx:
            return list(await asyncio.gather(*(
                hx.post("/v1/payments", json=b, auth=auth, headers={"Idempotency-Key": k})
                for b, k in plan)))

    replies = client.portal.call(go)  # type: ignore[union-attr]
    assert {r.status_code for r in replies} == {201}, replies[0].text
    trade = [r.json()["trade_no"] for r in replies]
    assert trade[:30] == trade[30:60] and trade[60:] == trade[:5] and len(set(trade)) == 30
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(payment_orders).where(
            payment_orders.c.merchant_id == shop.merchant.id)).scalar_one() == 30
    desk = client.app.state.desks["payments"]  # type: ignore[attr-defined]
    assert desk.items == 65 and desk.batches < 65


def test_the_batch_checks_each_signed_requests_nonce_key_and_merchant(
        client: TestClient, ctx: Context) -> None:
    """Once a key is remembered its signature is checked without a read; its nonce, its
    revocation and its merchant's state are checked in the batch. Each refusal is the 4xx
    the request would get alone, and it creates nothing nor uses up its Idempotency-Key."""
    shop = create_active_merchant(ctx, name="Guarded Books", category="books")
    spare, spare_secret = issue_credential(ctx, shop.merchant.id, actor="test")
    assert spare_secret is not None
    payer, _ = wallet(ctx)
    body = {"amount_fen": 100, "subject": "guarded", "payer_msisdn": payer.msisdn}

    def post(n: int, key_id: str, secret: str, *, nonce: str | None = None,
             idem_key: str | None = None) -> httpx.Response:
        b = {**body, "out_trade_no": f"G-{n}"}
        raw = json.dumps(b).encode()
        h = sign_headers(key_id, secret, "POST", "/v1/payments", raw,
                         timestamp=ctx.clock.now_us() // 1_000_000, nonce=nonce)
        return client.post("/v1/payments", content=raw, headers={
            **h, "content-type": "application/json",
            "Idempotency-Key": idem_key or str(uuid.uuid4())})

    assert post(1, shop.key_id, shop.secret, nonce="nonce-0001").status_code == 201
    assert merchant_auth.known(ctx, shop.key_id)
    replayed = post(2, shop.key_id, shop.secret, nonce="nonce-0001")
    assert (replayed.status_code, replayed.json()["code"]) == (401, "nonce_replayed")
    # Two requests with one nonce in flight together: one order, one refusal.
    auth_headers = sign_headers(shop.key_id, shop.secret, "POST", "/v1/payments",
                                json.dumps({**body, "out_trade_no": "G-3"}).encode(),
                                timestamp=ctx.clock.now_us() // 1_000_000, nonce="nonce-0003")

    async def twice() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as hx:
            return list(await asyncio.gather(*(hx.post(
                "/v1/payments", content=json.dumps({**body, "out_trade_no": "G-3"}).encode(),
                headers={**auth_headers, "content-type": "application/json",
                         "Idempotency-Key": str(uuid.uuid4())}) for _ in range(2))))

    pair = client.portal.call(twice)  # type: ignore[union-attr]
    assert sorted(r.status_code for r in pair) == [201, 401]
    revoke_credential(ctx, shop.merchant.id, shop.key_id, actor="test")
    key = str(uuid.uuid4())
    revoked = post(4, shop.key_id, shop.secret, idem_key=key)
    assert (revoked.status_code, revoked.json()["code"]) == (401, "key_revoked")
    assert post(4, spare.key_id, spare_secret, idem_key=key).status_code == 201  # key unused
    maker = ensure_operator(ctx.engine, ctx.clock, "guard-maker", "operator")
    onboarding.suspend(ctx, maker, shop.merchant.id, "paperwork")
    suspended = post(5, spare.key_id, spare_secret)
    assert (suspended.status_code, suspended.json()["code"]) == (403, "merchant_not_active")
    with ctx.engine.connect() as conn:
        made = conn.execute(select(payment_orders.c.out_trade_no).where(
            payment_orders.c.merchant_id == shop.merchant.id)).scalars().all()
    assert sorted(made) == ["G-1", "G-3", "G-4"]


def test_a_batch_that_fails_whole_is_run_again_alone_with_its_nonces_unspent(
        client: TestClient, ctx: Context, monkeypatch: Any) -> None:
    """The nonces are spent in the orders' transaction: when a batch fails as a whole and
    the desk runs each request again alone, no request is refused as its own replay."""
    from paycell.payments import api as payments_api

    shop = create_active_merchant(ctx, name="Rerun Books", category="books")
    payer, _ = wallet(ctx)
    auth = signed(ctx, shop)
    real = payments_api.create_in
    failed: list[int] = []

    def flaky(ctx_: Context, conn: Any, cmds: Any, **kw: Any) -> Any:
        if len(cmds) > 1:  # a batch of several fails once, after its nonces were spent
            failed.append(len(cmds))
            raise RuntimeError("the batch broke")
        return real(ctx_, conn, cmds, **kw)

    monkeypatch.setattr(payments_api, "create_in", flaky)
    bodies = [{"out_trade_no": f"R-{i}", "amount_fen": 100 + i, "subject": "rerun",
               "payer_msisdn": payer.msisdn} for i in range(8)]

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as hx:
            return list(await asyncio.gather(*(
                hx.post("/v1/payments", json=b, auth=auth,
                        headers={"Idempotency-Key": str(uuid.uuid4())}) for b in bodies)))

    replies = client.portal.call(go)  # type: ignore[union-attr]
    assert failed, "the requests shared a batch"
    assert [r.status_code for r in replies] == [201] * 8, [r.text for r in replies]


def test_an_orders_text_is_recorded_in_its_transaction(ctx: Context, monkeypatch: Any) -> None:
    """The payer's text with the code is written with the order: a transaction that fails
    after both leaves neither, and one that commits leaves both."""
    from paycell.gateways.sms import sms_messages
    from paycell.payments import orders_batch

    shop = create_active_merchant(ctx, name="Outbox Books", category="books")
    payer, _ = wallet(ctx)

    def cmd(n: str) -> CreateCommand:
        return CreateCommand(shop.merchant, orders.OrderRequest(
            out_trade_no=n, amount_fen=100, subject="outbox", payer_msisdn=payer.msisdn))

    def texts() -> int:
        with ctx.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(sms_messages).where(
                sms_messages.c.msisdn == payer.msisdn)).scalar_one())

    real = orders_batch.record_codes

    def then_fail(*args: Any) -> Any:
        real(*args)
        raise RuntimeError("the process died before the commit")

    monkeypatch.setattr(orders_batch, "record_codes", then_fail)
    with pytest.raises(RuntimeError):
        create_batch(ctx, [cmd("O-1")])
    assert texts() == 0
    with pytest.raises(orders.OrderNotFoundError):
        orders.merchant_order(ctx, shop.merchant.id, out_trade_no="O-1")
    monkeypatch.setattr(orders_batch, "record_codes", real)
    made = create_batch(ctx, [cmd("O-1")])[0].unwrap()[0]
    assert texts() == 1 and made.out_trade_no == "O-1"
