"""Online authorisation at a POS terminal, end to end through the terminal API: the card
simulator's ARQC, the platform's checks and ARPC, reversals, voids, refunds and batch
totals. Both databases; the ledger is audited after each test (the ``client`` fixture)."""

from __future__ import annotations

import re

import pytest
from cash_helpers import client, clock, ctx, settings  # type: ignore[import-not-found]  # noqa: F401
from pos_helpers import PIN, balance, card_holder, pos, shop  # type: ignore[import-not-found]
from sqlalchemy import func, select

from paycell.ledger.chart import TransferCode
from paycell.onsite import cards
from paycell.onsite.pos_sim import PosError, Sale
from paycell.onsite.terminal_tables import authorisations


def _declines(c) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with c.engine.connect() as conn:
        return [(r.response_code, r.reason) for r in conn.execute(
            select(authorisations).where(authorisations.c.state == "declined")
            .order_by(authorisations.c.id))]


def _transfers(c) -> int:  # type: ignore[no-untyped-def]
    from paycell.ledger.tables import transfers

    with c.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(transfers)).scalar_one())


def test_approved_tap_moves_the_money_once(client, ctx) -> None:  # noqa: F811
    m = shop(ctx)
    h = card_holder(ctx, 20_000)
    p = pos(client, ctx, m)
    payable0 = balance(ctx, m.merchant.payable_account_id)
    sale = p.purchase(h.sim, 1_250)
    a = sale.answer
    assert a is not None and a["approved"] and a["response_code"] == "00"
    assert re.fullmatch(r"[0-9]{6}", a["auth_code"]) and a["arc"] == "3030"
    assert sale.card_result == "TC"  # the card verified the ARPC
    assert balance(ctx, h.sub.wallet_account_id) == 20_000 - 1_250
    assert balance(ctx, m.merchant.payable_account_id) == payable0 + 1_250
    tr = ctx.ledger.transfer(f"pos:{p.terminal_id}:1:{sale.stan}")
    assert tr is not None and tr.code == TransferCode.POS_PURCHASE and tr.amount == 1_250
    assert cards.get_card(ctx, h.card.id).last_atc == h.sim.atc == 1


def test_tampered_cryptogram_is_declined(client, ctx) -> None:  # noqa: F811
    m = shop(ctx)
    h = card_holder(ctx, 20_000)
    p = pos(client, ctx, m)
    msg = p.message(h.sim, 1_000, p.next_stan())
    msg["arqc"] = msg["arqc"][:-1] + ("0" if msg["arqc"][-1] != "0" else "1")
    a = p._post("authorisations", msg)
    assert not a["approved"] and a["response_code"] == "05" and a["arpc"] is None
    msg2 = p.message(h.sim, 1_000, p.next_stan())
    msg2["amount_fen"] = 100  # the amount the card signed was 10.00
    a = p._post("authorisations", msg2)
    assert a["response_code"] == "05" and a["reason"] == "cryptogram_invalid"
    assert balance(ctx, h.sub.wallet_account_id) == 20_000
    assert _declines(ctx) == [("05", "cryptogram_invalid")] * 2


def test_replayed_atc_declined_retransmission_answered_again(client, ctx) -> None:  # noqa: F811
    m = shop(ctx)
    h = card_holder(ctx, 20_000)
    p = pos(client, ctx, m)
    msg = p.message(h.sim, 800, p.next_stan())
    first = p._post("authorisations", msg)
    assert first["approved"]
    again = p._post("authorisations", msg)  # the same message, the same STAN: same answer
    assert again["auth_code"] == first["auth_code"] and again["approved"]
    replay = {**msg, "stan": p.next_stan()}  # the same ARQC under a new STAN
    a = p._post("authorisations", replay)
    assert not a["approved"] and a["response_code"] == "05" and a["reason"] == "atc_replayed"
    other = {**msg, "amount_fen": 900}  # another message under a used STAN
    a = p._post("authorisations", other)
    assert a["response_code"] == "94" and not a["approved"]
    assert balance(ctx, h.sub.wallet_account_id) == 20_000 - 800


def test_amount_cap_and_no_pin_limit(client, ctx) -> None:  # noqa: F811
    m = shop(ctx)
    h = card_holder(ctx, 100_000)
    p = pos(client, ctx, m)
    over = p.purchase(h.sim, 50_001, pin=PIN)  # 500.01 CNY
    assert over.response_code == "61" and over.answer["reason"] == "amount_over_cap"
    assert over.card_result == "AAC"
    assert p.purchase(h.sim, 30_000).approved  # at the no-PIN limit: no PIN needed
    no_pin = p.purchase(h.sim, 30_001)
    assert no_pin.response_code == "55" and no_pin.answer["reason"] == "pin_required"
    assert no_pin.answer["arpc"] and no_pin.card_result == "AAC"  # an issuer-signed decline
    wrong = p.purchase(h.sim, 30_001, pin="000000")
    assert wrong.response_code == "55" and wrong.answer["reason"] == "pin_invalid"
    right = p.purchase(h.sim, 50_000, pin=PIN)
    assert right.approved
    assert balance(ctx, h.sub.wallet_account_id) == 100_000 - 30_000 - 50_000
    # The ATC of a declined-but-genuine tap is used up: its ARQC cannot come back.
    assert cards.get_card(ctx, h.card.id).last_atc == h.sim.atc


def test_balance_limits_and_card_state(client, ctx) -> None:  # noqa: F811
    m = shop(ctx)
    h = card_holder(ctx, 1_000)
    p = pos(client, ctx, m)
    poor = p.purchase(h.sim, 1_001)
    assert poor.response_code == "51" and poor.answer["reason"] == "insufficient_funds"
    assert p.purchase(h.sim, 1_000).approved
    cards.lock(ctx, h.card.id)
    locked = p.purchase(h.sim, 10)
    assert locked.response_code == "62"
    cards.unlock(ctx, h.card.id)
    cards.report_lost(ctx, h.card.id, "test")
    assert p.purchase(h.sim, 10).response_code == "62"
    assert balance(ctx, h.sub.wallet_account_id) == 0
    rich = card_holder(ctx, 100_000)  # tier 0: 1,000 CNY a day
    for _ in range(2):
        assert p.purchase(rich.sim, 30_000).approved
    assert p.purchase(rich.sim, 30_000, pin=PIN).approved
    daily = p.purchase(rich.sim, 10_001)
    assert daily.response_code == "61" and daily.answer["reason"] == "limit_daily"


def test_reversal_after_timeout_restores_balance_once(client, ctx) -> None:  # noqa: F811
    m = shop(ctx)
    h = card_holder(ctx, 20_000)
    p = pos(client, ctx, m)
    payable0 = balance(ctx, m.merchant.payable_account_id)
    sale = p.purchase(h.sim, 4_000, lose_answer=True)  # approved, but the answer was lost
    assert sale.reversed and sale.card_result == "AAC"
    assert balance(ctx, h.sub.wallet_account_id) == 20_000
    again = p.reverse(sale)  # the terminal sends the reversal again
    assert again["state"] == "reversed"
    assert balance(ctx, h.sub.wallet_account_id) == 20_000
    assert balance(ctx, m.merchant.payable_account_id) == payable0
    tr = ctx.ledger.transfer(f"pos:{p.terminal_id}:1:{sale.stan}:rev")
    assert tr is not None and tr.amount == 4_000
    n = _transfers(ctx)
    p.reverse(sale)
    assert _transfers(ctx) == n
    # The reversal of a tap whose request never reached us: a tombstone; the late
    # original is declined 94 and moves nothing.
    stan = p.next_stan()
    early = p._post("reversals", {"batch_no": 1, "stan": stan, "amount_fen": 3_000})
    assert early["state"] == "reversed" and early["auth_code"] is None
    late = p._post("authorisations", p.message(h.sim, 3_000, stan))
    assert not late["approved"] and late["response_code"] == "94"
    assert balance(ctx, h.sub.wallet_account_id) == 20_000
    totals = p.close_batch()
    assert (totals["reversed_count"], totals["reversed_fen"]) == (1, 4_000)
    assert totals["balanced"] is True


def test_void_same_batch_only(client, ctx) -> None:  # noqa: F811
    m = shop(ctx)
    h = card_holder(ctx, 20_000)
    p = pos(client, ctx, m)
    sale = p.purchase(h.sim, 2_000)
    kept = p.purchase(h.sim, 500)
    voided = p.void(sale)
    assert voided["state"] == "voided" and p.void(sale)["state"] == "voided"
    assert balance(ctx, h.sub.wallet_account_id) == 20_000 - 500
    totals = p.close_batch()
    assert (totals["approved_count"], totals["approved_fen"]) == (1, 500)
    assert (totals["voided_count"], totals["voided_fen"]) == (1, 2_000)
    assert totals["balanced"] is True
    p.sign_on()
    with pytest.raises(PosError) as exc:  # the next day it is a refund, not a void
        p._post("voids", {"batch_no": kept.batch_no, "stan": kept.stan})
    assert exc.value.problem["code"] == "batch_not_open"


def test_refunds_never_exceed_the_purchase(client, ctx) -> None:  # noqa: F811
    m = shop(ctx)
    h = card_holder(ctx, 20_000)
    p = pos(client, ctx, m)
    sale = p.purchase(h.sim, 3_000)
    p.close_batch()
    p.sign_on()
    r1 = p.refund(sale, 1_000)
    assert r1["amount_fen"] == 1_000 and r1["transfer_id"].startswith("posr:")
    with pytest.raises(PosError) as exc:
        p.refund(sale, 2_001)
    assert exc.value.status == 409 and exc.value.problem["code"] == "refund_exceeds_purchase"
    assert exc.value.problem["refundable_fen"] == 2_000
    p.refund(sale, 2_000)
    assert balance(ctx, h.sub.wallet_account_id) == 20_000
    tr = ctx.ledger.transfer(r1["transfer_id"])
    assert tr is not None and tr.code == TransferCode.POS_REFUND
    # The same refund message again (same STAN): the same refund, no money.
    same = p._post("refunds", {"batch_no": 2, "stan": r1["stan"], "original_batch_no": 1,
                               "original_stan": sale.stan, "amount_fen": 1_000})
    assert same["transfer_id"] == r1["transfer_id"]
    assert balance(ctx, h.sub.wallet_account_id) == 20_000
    totals = p.close_batch()
    assert (totals["refunded_count"], totals["refunded_fen"]) == (2, 3_000)
    assert totals["balanced"] is True


def test_terminal_refused_for_another_merchants_store(client, ctx) -> None:  # noqa: F811
    mine = shop(ctx, "Mine", stores=("S1", "S2"))
    theirs = shop(ctx, "Theirs")
    h = card_holder(ctx, 20_000)
    p = pos(client, ctx, mine)
    p.merchant_code = theirs.merchant.code  # claims to be the other merchant's store S1
    sale = p.purchase(h.sim, 1_000)
    assert sale.response_code == "03" and sale.answer["reason"] == "merchant_not_terminal_owner"
    p.merchant_code, p.store_code = mine.merchant.code, "S2"  # its own merchant, not its store
    sale = p.purchase(h.sim, 1_000)
    assert sale.response_code == "03" and sale.answer["reason"] == "store_not_terminal_store"
    assert balance(ctx, h.sub.wallet_account_id) == 20_000
    assert balance(ctx, theirs.merchant.payable_account_id) == 200_000


def test_batch_totals_add_up(client, ctx) -> None:  # noqa: F811
    m = shop(ctx)
    h = card_holder(ctx, 50_000)
    p = pos(client, ctx, m)
    sales: list[Sale] = [p.purchase(h.sim, amt) for amt in (1_000, 2_000, 3_000)]
    p.purchase(h.sim, 99_999)  # declined 61
    p.void(sales[0])
    p.purchase(h.sim, 500, lose_answer=True)
    p.refund(sales[1], 700)
    totals = p.close_batch()
    assert totals["balanced"] is True, totals
    assert (totals["approved_count"], totals["approved_fen"]) == (2, 5_000)
    assert (totals["voided_count"], totals["reversed_count"]) == (1, 1)
    assert (totals["refunded_count"], totals["refunded_fen"]) == (1, 700)
    assert totals["declined_count"] == 1 and totals["net_fen"] == 4_300
    assert balance(ctx, h.sub.wallet_account_id) == 50_000 - 4_300
