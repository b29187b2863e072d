"""The POS simulator against paycell served over real HTTP (uvicorn, httpx), and the
authorisation service under concurrent retries. Both databases; the ledger is audited
after each test (the ``client`` fixture)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cash_helpers import client, clock, ctx, settings  # type: ignore[import-not-found]  # noqa: F401
from pos_helpers import PIN, balance, card_holder, shop, terminal  # type: ignore[import-not-found]

from paycell.gateways.simkit import SimServer
from paycell.onsite import authorise as au
from paycell.onsite import authorise_batch as ab
from paycell.onsite import pos_returns as pr
from paycell.onsite import terminals as tm
from paycell.onsite.pos_sim import PosSim


@pytest.fixture
def server(client) -> Iterator[SimServer]:  # noqa: F811
    srv = SimServer(client.app).start()  # the test app (its lifespan already ran)
    try:
        yield srv
    finally:
        srv.stop()


def test_a_day_at_the_shop_over_http(client, ctx, server) -> None:  # noqa: F811
    m = shop(ctx)
    reg = terminal(ctx, m)
    p = PosSim.connect(server.url, reg.terminal.terminal_id, reg.key_hex, m.merchant.code,
                       "S1", clock=ctx.clock)
    alice, bob, carol = (card_holder(ctx, 60_000) for _ in range(3))
    payable0 = balance(ctx, m.merchant.payable_account_id)
    assert p.sign_on() == 1
    a = p.purchase(alice.sim, 1_250)
    b = p.purchase(bob.sim, 35_000, pin=PIN)
    c = p.purchase(carol.sim, 800, lose_answer=True)
    assert a.approved and b.approved and c.reversed
    assert p.void(a)["state"] == "voided"
    day1 = p.close_batch()
    assert day1["balanced"] is True and day1["net_fen"] == 35_000
    ctx.clock.advance(hours=20)  # type: ignore[attr-defined]
    assert p.sign_on() == 2
    p.refund(b, 5_000)
    day2 = p.close_batch()
    assert day2["balanced"] is True and day2["refunded_fen"] == 5_000
    assert [balance(ctx, h.sub.wallet_account_id) for h in (alice, bob, carol)] == [
        60_000, 60_000 - 30_000, 60_000]
    assert balance(ctx, m.merchant.payable_account_id) == payable0 + 30_000
    p.http.close()


def test_card_refuses_forged_arpc_terminal_reverses(client, ctx) -> None:  # noqa: F811
    m = shop(ctx)
    reg = terminal(ctx, m)
    p = PosSim(client, reg.terminal.terminal_id, reg.key_hex, m.merchant.code, "S1",
               clock=ctx.clock)
    p.sign_on()
    h = card_holder(ctx, 10_000)
    real_post = p._post

    def tampering(path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = real_post(path, body)
        if path == "authorisations" and answer.get("arpc"):
            answer["arpc"] = "00" * 8  # someone between the issuer and the card
        return answer

    p._post = tampering  # type: ignore[method-assign]
    sale = p.purchase(h.sim, 2_000)
    assert sale.answer is not None and sale.answer["approved"]
    assert sale.card_result == "AAC" and sale.reversed and not sale.approved
    assert balance(ctx, h.sub.wallet_account_id) == 10_000
    assert p.close_batch()["balanced"] is True


def _request(p: PosSim, h: Any, amount_fen: int) -> au.AuthRequest:
    msg = p.message(h.sim, amount_fen, p.next_stan())
    return au.AuthRequest(**msg)


def test_concurrent_retries_move_money_once(client, ctx) -> None:  # noqa: F811
    m = shop(ctx)
    reg = terminal(ctx, m)
    term = reg.terminal
    tm.sign_on(ctx, term)
    p = PosSim(client, term.terminal_id, reg.key_hex, m.merchant.code, "S1", clock=ctx.clock)
    p.batch_no = 1
    h = card_holder(ctx, 10_000)
    req = _request(p, h, 3_000)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: ab.authorise(ctx, term, req), range(4)))
    assert {a.auth_code for a in answers} == {answers[0].auth_code} and answers[0].approved
    assert balance(ctx, h.sub.wallet_account_id) == 7_000
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda _: pr.reverse(ctx, term, 1, req.stan, 3_000), range(4)))
    assert {d.state for d in done} == {"reversed"}
    assert balance(ctx, h.sub.wallet_account_id) == 10_000
    # A reversal racing its own original: whichever is first, the money ends where it began.
    req2 = _request(p, h, 1_000)
    with ThreadPoolExecutor(2) as pool:
        fa = pool.submit(ab.authorise, ctx, term, req2)
        fr = pool.submit(pr.reverse, ctx, term, 1, req2.stan, 1_000)
        fa.result(), fr.result()
    pr.reverse(ctx, term, 1, req2.stan, 1_000)  # the terminal repeats it until answered
    assert balance(ctx, h.sub.wallet_account_id) == 10_000
    totals = tm.batch_totals(ctx, tm.get_terminal(ctx, term.terminal_id), 1)
    assert totals.approved_count == 0 and totals.approved_fen == 0
