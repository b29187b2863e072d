"""NFC taps decided many at once (onsite/authorise_batch.py): a batch answers as the same
taps one after another would, whatever their mix of approvals and declines; and the
terminals' API batches concurrent taps through its desk."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from cash_helpers import client, clock, ctx, settings  # type: ignore[import-not-found]
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pos_helpers import PIN, balance, card_holder, shop, terminal  # type: ignore[import-not-found]

from paycell.context import Context
from paycell.ledger.audit import audit
from paycell.onsite import authorise as au
from paycell.onsite import authorise_batch as ab
from paycell.onsite import cards
from paycell.onsite import terminals as tm
from paycell.onsite.pos_sim import PosSim

__all__ = ["client", "clock", "ctx", "settings"]  # fixtures, imported for pytest

# A tap: (card 0-2, amount, PIN: none / right / wrong, replay the previous tap's message)
taps = st.lists(st.tuples(st.integers(0, 2), st.integers(1, 52_000),
                          st.sampled_from([None, PIN, "918273"]), st.booleans()),
                min_size=1, max_size=10)
funds = st.lists(st.integers(0, 60_000), min_size=3, max_size=3)


class _World:
    """A shop with a signed-on terminal and three funded cards."""

    def __init__(self, client: TestClient, ctx: Context, balances: list[int]) -> None:
        m = shop(ctx)
        reg = terminal(ctx, m)
        tm.sign_on(ctx, reg.terminal)
        self.term = tm.get_terminal(ctx, reg.terminal.terminal_id)
        self.pos = PosSim(client, reg.terminal.terminal_id, reg.key_hex, m.merchant.code,
                          "S1", clock=ctx.clock)
        self.pos.batch_no = self.term.batch_no
        self.holders = [card_holder(ctx, b) for b in balances]
        self.payable = m.merchant.payable_account_id

    def taps(self, spec: list[tuple[int, int, str | None, bool]]) -> list[ab.Tap]:
        out: list[ab.Tap] = []
        for card, amount, pin, replay in spec:
            stan = self.pos.next_stan()
            if replay and out:  # the same cryptogram again under a new STAN
                msg = {**out[-1].req.__dict__, "stan": stan}
            else:
                msg = self.pos.message(self.holders[card].sim, amount, stan, pin)
            out.append(ab.Tap(self.term, au.AuthRequest(**msg)))
        return out

    def seen(self, ctx: Context, answers: list[Any]) -> Any:
        said = [(a.state, a.response_code, a.reason, a.amount_fen, a.atc)
                for a in answers]
        held = [(balance(ctx, h.sub.wallet_account_id),
                 cards.get_card(ctx, h.card.id).last_atc) for h in self.holders]
        return said, held, balance(ctx, self.payable)


@hsettings(max_examples=10, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(balances=funds, spec=taps)
def test_a_batch_answers_as_the_taps_one_by_one(client: TestClient, ctx: Context,
                                                balances: list[int], spec: list[Any]) -> None:
    together, alone = _World(client, ctx, balances), _World(client, ctx, balances)
    batched = ab.authorise_batch(ctx, together.taps(spec))
    one_by_one = [ab.authorise_batch(ctx, [t])[0] for t in alone.taps(spec)]
    assert together.seen(ctx, batched) == alone.seen(ctx, one_by_one)


def test_the_desk_batches_concurrent_taps_through_the_api(client: TestClient,
                                                          ctx: Context) -> None:
    """Forty taps on four terminals at once, each sent twice (the terminal repeating a
    message it got no answer to): every tap is decided once, both copies hear the same."""
    m = shop(ctx, payable_fen=600_000)  # four terminal deposits
    posses = []
    for _ in range(4):
        reg = terminal(ctx, m)
        p = PosSim(client, reg.terminal.terminal_id, reg.key_hex, m.merchant.code, "S1",
                   clock=ctx.clock)
        p.sign_on()
        posses.append(p)
    # A card taps once: its taps in flight together could arrive in any order, and one
    # whose ATC is not above the last one seen is declined as a replay.
    holders = [card_holder(ctx, 50_000) for _ in range(40)]
    messages = []
    for i in range(40):
        p = posses[i % 4]
        messages.append((p, p.message(holders[i].sim, 100 + i, p.next_stan())))

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as hx:
            return list(await asyncio.gather(*(
                hx.post("/v1/terminal/authorisations", json=msg, auth=p.auth)
                for p, msg in messages * 2)))

    replies = client.portal.call(go)  # type: ignore[union-attr]
    assert {r.status_code for r in replies} == {200}, replies[0].text
    first, second = replies[:40], replies[40:]
    assert all(r.json()["approved"] for r in first)
    assert [r.json()["auth_code"] for r in first] == [r.json()["auth_code"] for r in second]
    assert [balance(ctx, h.sub.wallet_account_id) for h in holders] == [
        50_000 - 100 - i for i in range(40)]
    desk = client.app.state.desks["payments"]  # type: ignore[attr-defined]
    assert desk.items == 80 and desk.batches < 80
    assert audit(ctx.engine).ok


def test_a_tap_spends_its_nonce_and_needs_an_active_terminal(client: TestClient,
                                                              ctx: Context) -> None:
    """The authorisation checks its message's nonce and the terminal's state in the batch's
    transaction: a replayed message is refused, and a terminal suspended after its key was
    remembered is refused too."""
    m = shop(ctx)
    reg = terminal(ctx, m)
    p = PosSim(client, reg.terminal.terminal_id, reg.key_hex, m.merchant.code, "S1",
               clock=ctx.clock)
    p.sign_on()
    holder = card_holder(ctx, 10_000)
    path = "/v1/terminal/authorisations"
    body = httpx.Request("POST", "http://t", json=p.message(holder.sim, 500,
                                                            p.next_stan())).content
    headers = {**p.auth.headers("POST", path, body), "Content-Type": "application/json"}
    first = client.post(path, content=body, headers=headers)
    assert first.status_code == 200 and first.json()["approved"]
    again = client.post(path, content=body, headers=headers)
    assert again.status_code == 401 and again.json()["code"] == "terminal_nonce_replayed"
    tm.change_state(ctx, reg.terminal.terminal_id, "suspend", "test")
    msg = p.message(holder.sim, 500, p.next_stan())
    r = client.post(path, json=msg, auth=p.auth)
    assert r.status_code == 403 and r.json()["code"] == "terminal_not_active"
    assert balance(ctx, holder.sub.wallet_account_id) == 9_500
