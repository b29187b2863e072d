"""P2P transfers sent many at once (funding/p2p_send.py, api/desk.py): a batch answers as
the same commands one after another would, and the API's desk batches concurrent requests
without losing, doubling or mixing up any of them."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cash_helpers import (  # type: ignore[import-not-found]
    PIN,
    balance,
    client,
    clock,
    ctx,
    fund,
    idem,
    msisdn,
    settings,
    wallet,
)
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select

from paycell.api.desk import Desk, Lane
from paycell.context import Context
from paycell.funding.p2p_send import SendCommand, send_batch
from paycell.ledger.audit import audit
from paycell.subscribers.lifecycle import freeze
from paycell.subscribers.limits import used_fen
from paycell.subscribers.service import Subscriber, get_subscriber
from paycell.subscribers.tables import subscribers

__all__ = ["client", "clock", "ctx", "settings"]  # fixtures, imported for pytest
TRANSFERS = "/v1/wallet/transfers"
WRONG = "918273"

# A command: (sender 0-3, recipient 0-3 or 4-5 for numbers without a wallet, amount, right PIN)
commands = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5),
                              st.integers(1, 60_000), st.booleans().map(lambda b: b or None)),
                    min_size=1, max_size=12)
balances = st.lists(st.integers(0, 95_000), min_size=4, max_size=4)


def _world(ctx: Context, funds: list[int]) -> tuple[list[Subscriber], list[str]]:
    """Four tier-0 wallets funded as given (the last one frozen) and two bare numbers."""
    subs = []
    for i, amount in enumerate(funds):
        sub, _ = wallet(ctx)
        if amount:
            fund(ctx, sub, amount)
        if i == 3:
            freeze(ctx, sub.id, "test")
        subs.append(get_subscriber(ctx, sub.id))
    return subs, [*(s.msisdn for s in subs), msisdn(), msisdn()]


def _cmds(world: tuple[list[Subscriber], list[str]],
          spec: list[tuple[int, int, int, bool | None]]) -> list[SendCommand]:
    subs, numbers = world
    return [SendCommand(subs[s], numbers[r], amount, PIN if right else WRONG, None,
                        str(uuid.uuid4())) for s, r, amount, right in spec]


def _seen(ctx: Context, world: tuple[list[Subscriber], list[str]], sent: list[Any]) -> Any:
    """What a world shows after the commands, in terms that do not depend on its ids."""
    subs, numbers = world
    answers = []
    for s in sent:
        if s.error is not None:
            answers.append((s.error.code, sorted((s.error.detail or {}).items())))
        else:
            t = s.transfer
            answers.append((t.state, numbers.index(t.recipient_msisdn), t.amount_fen))
    now = ctx.clock.now_us()
    with ctx.engine.connect() as conn:
        pins = {r.id: (r.pin_failures, r.pin_locked_until) for r in conn.execute(
            select(subscribers).where(subscribers.c.id.in_([s.id for s in subs])))}
        state = [(balance(ctx, s), used_fen(conn, s.id, now), pins[s.id]) for s in subs]
    return answers, state


@hsettings(max_examples=20, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(funds=balances, spec=commands)
def test_a_batch_answers_as_the_commands_one_by_one(ctx: Context, funds: list[int],
                                                    spec: list[Any]) -> None:
    together, alone = _world(ctx, funds), _world(ctx, funds)
    batched = send_batch(ctx, _cmds(together, spec))
    one_by_one = [send_batch(ctx, [c])[0] for c in _cmds(alone, spec)]
    assert _seen(ctx, together, batched) == _seen(ctx, alone, one_by_one)


def test_a_repeated_command_answers_with_the_first_transfer(ctx: Context) -> None:
    (a, b, *_), numbers = _world(ctx, [50_000, 0, 0, 0])
    cmd = SendCommand(a, numbers[1], 1_000, PIN, "lunch", "key-1")
    first = send_batch(ctx, [cmd])[0].unwrap()
    # A retry, even with a wrong PIN now, is answered with what the first one did.
    again = send_batch(ctx, [SendCommand(a, numbers[1], 1_000, WRONG, "lunch", "key-1"),
                             SendCommand(a, numbers[1], 2_000, PIN, None, "key-2")])
    assert again[0].unwrap() == first and not again[0].created
    assert again[1].created and balance(ctx, a) == 47_000 and balance(ctx, b) == 3_000


def test_a_batch_refuses_the_same_request_key_twice(ctx: Context) -> None:
    (a, *_), numbers = _world(ctx, [50_000, 0, 0, 0])
    cmd = SendCommand(a, numbers[1], 1_000, PIN, None, "same")
    with pytest.raises(ValueError):
        send_batch(ctx, [cmd, cmd])


def test_the_desk_batches_concurrent_requests_through_the_api(
        client: TestClient, ctx: Context) -> None:
    """Sixty transfers in flight at once, a third of them sent twice (a client retrying
    with the same key): each key moves money once and both copies get the same answer."""
    senders = [wallet(ctx) for _ in range(6)]
    for sub, _ in senders:
        fund(ctx, sub, 90_000)
    payee, _ = wallet(ctx, name="Li Hua", id_number="11010519491231002X")
    plan = []
    for i in range(60):
        sub, auth = senders[i % 6]
        body = {"to_msisdn": payee.msisdn, "amount_fen": 1_000 + i, "pin": PIN}
        plan.append((auth | idem(), body))
    plan += plan[::3]  # the retries

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as hx:
            return list(await asyncio.gather(*(hx.post(TRANSFERS, json=body, headers=h)
                                               for h, body in plan)))

    replies = client.portal.call(go)  # type: ignore[union-attr]
    assert {r.status_code for r in replies} == {201}, [r.text for r in replies][:3]
    by_key: dict[str, set[str]] = {}
    for (h, _), r in zip(plan, replies, strict=True):
        by_key.setdefault(h["Idempotency-Key"], set()).add(r.json()["id"])
    assert len(by_key) == 60 and all(len(refs) == 1 for refs in by_key.values())
    assert balance(ctx, payee) == sum(1_000 + i for i in range(60))
    desk = client.app.state.desks["payments"]  # type: ignore[attr-defined]
    assert desk.items == 80 and desk.batches < 80  # some shared a transaction
    assert audit(ctx.engine).ok


def test_one_failing_request_does_not_fail_its_batch() -> None:
    def run(items: list[int]) -> list[int]:
        if 13 in items:
            raise RuntimeError("unlucky")
        return [i * 2 for i in items]

    desk = Desk("test")
    lane: Lane[int, int] = Lane("double", run, keys=lambda i: (i,))

    async def go() -> list[Any]:
        return list(await asyncio.gather(*(desk.submit(lane, i) for i in (1, 13, 2, 2)),
                                         return_exceptions=True))

    out = asyncio.run(go())
    desk.close()
    assert out[0] == 2 and isinstance(out[1], RuntimeError) and out[2:] == [4, 4]


def test_a_batch_runs_its_lanes_one_after_another_each_failing_alone() -> None:
    """Requests of several kinds share a batch; each kind runs as its own batch, in the order
    the kinds first arrived, and a kind whose batch fails does not touch the others."""
    ran: list[tuple[str, list[int]]] = []
    gate = threading.Event()

    def runner(name: str, fail: bool = False) -> Callable[[list[int]], list[int]]:
        def run(items: list[int]) -> list[int]:
            gate.wait()
            ran.append((name, list(items)))
            if fail and len(items) > 1:
                raise RuntimeError("the whole batch failed")
            return [i + (100 if name == "b" else 0) for i in items]
        return run

    desk = Desk("test")
    a: Lane[int, int] = Lane("a", runner("a"), keys=lambda i: (("a", i),))
    b: Lane[int, int] = Lane("b", runner("b", fail=True), keys=lambda i: (("b", i),))

    async def go() -> list[Any]:
        first = asyncio.ensure_future(desk.submit(a, 0))  # runs alone, holding the others
        await asyncio.sleep(0.05)
        rest = [desk.submit(b, 1), desk.submit(a, 2), desk.submit(b, 3), desk.submit(a, 4)]
        tasks = [asyncio.ensure_future(r) for r in rest]
        await asyncio.sleep(0.05)
        gate.set()
        return [await first, *[await t for t in tasks]]

    out = asyncio.run(go())
    desk.close()
    assert out == [0, 101, 2, 103, 4]
    assert ran == [("a", [0]), ("b", [1, 3]), ("b", [1]), ("b", [3]), ("a", [2, 4])]
    assert (desk.batches, desk.items) == (3, 5)
