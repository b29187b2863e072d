"""Worked examples of every commission rule (the seed's deals) and properties of the
arithmetic: parts sum to the whole, tiered commission telescopes over a month, clearing
conserves money."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paycell.settlement.clearing import Accounts, Figures, plan_merchant
from paycell.settlement.rules import (
    Rule,
    RuleInvalidError,
    card_shares,
    commission,
    parse_rule,
    tiered_total,
)

TIERS = [{"up_to_fen": 10_000_000, "bp": 60}, {"up_to_fen": 50_000_000, "bp": 45},
         {"up_to_fen": None, "bp": 30}]


def test_restaurant_chain_pays_one_percent() -> None:
    rule = parse_rule("percentage", {"bp": 100})
    # 12,345.67 CNY of sales: 1 % is 123.4567, rounded half up to 123.46
    c = commission(rule, gross_fen=1_234_567, sales=80, refunds_fen=5_000)
    assert c.commission_fen == 12_346
    assert c.returned_fen == 50  # 1 % of a 50.00 refund goes back


def test_fast_food_chain_gives_ten_percent_of_revenue() -> None:
    rule = parse_rule("revenue_share", {"bp": 1_000})
    c = commission(rule, gross_fen=50_000, sales=12, refunds_fen=0)
    assert c == type(c)(5_000, 0)


def test_cinema_discount_settlement() -> None:
    # list price 100 CNY: the user pays 80 (8,000 of list), the merchant gets 60 (6,000):
    # the operator keeps 20 CNY, 20 % of list = 25 % of what the user paid
    rule = parse_rule("discount", {"paid_bp": 8_000, "settle_bp": 6_000})
    c = commission(rule, gross_fen=8_000, sales=1, refunds_fen=8_000)
    assert c.commission_fen == 2_000
    assert 8_000 - c.commission_fen == 6_000
    assert c.returned_fen == 2_000  # a refunded ticket gives the whole 20 CNY back


def test_fixed_fee_per_sale_is_not_returned_and_never_above_the_gross() -> None:
    rule = parse_rule("fixed", {"fen": 50})
    assert commission(rule, gross_fen=10_000, sales=7, refunds_fen=300).commission_fen == 350
    assert commission(rule, gross_fen=10_000, sales=7, refunds_fen=300).returned_fen == 0
    assert commission(rule, gross_fen=120, sales=3, refunds_fen=0).commission_fen == 120


def test_tiered_is_marginal_like_tax_brackets() -> None:
    rule = parse_rule("tiered", {"tiers": TIERS})
    # the month is at 90,000 CNY; a 30,000 CNY day: 10,000 at 0.6 % + 20,000 at 0.45 %
    c = commission(rule, gross_fen=3_000_000, sales=100, refunds_fen=100_000,
                   month_before_fen=9_000_000)
    assert c.commission_fen == 6_000 + 9_000
    assert c.returned_fen == 450  # at the bracket reached: 0.45 % of 1,000 CNY


def test_none_for_supermarkets_and_the_light_rail() -> None:
    rule = parse_rule("none", {})
    assert commission(rule, gross_fen=99_999, sales=5, refunds_fen=10).commission_fen == 0


def test_card_fee_split_70_20_10() -> None:
    assert card_shares(1_000, "70/20/10") == (700, 200, 100)
    assert card_shares(1, "70/20/10") == (1, 0, 0)


@pytest.mark.parametrize(("kind", "params", "field"), [
    ("percentage", {"bp": 201}, "bp"),
    ("percentage", {"bp": -1}, "bp"),
    ("percentage", {"bp": 1.5}, "bp"),
    ("revenue_share", {"bp": 0}, "bp"),
    ("discount", {"paid_bp": 6_000, "settle_bp": 8_000}, "settle_bp"),
    ("fixed", {"fen": 10_001}, "fen"),
    ("tiered", {"tiers": [{"up_to_fen": 100, "bp": 60}]}, "tiers"),
    ("tiered", {"tiers": [{"up_to_fen": 100, "bp": 60}, {"up_to_fen": 50, "bp": 1},
                          {"up_to_fen": None, "bp": 1}]}, "tiers"),
    ("tiered", {"tiers": [{"up_to_fen": None, "bp": 300}]}, "bp"),
    ("bonus", {}, "kind"),
    ("none", {"bp": 1}, "bp"),
])
def test_rules_out_of_range_are_refused(kind: str, params: dict, field: str) -> None:
    with pytest.raises(RuleInvalidError) as info:
        parse_rule(kind, params)
    assert info.value.detail["field"] == field


rules = st.one_of(
    st.builds(lambda bp: Rule("percentage", {"bp": bp}), st.integers(0, 200)),
    st.builds(lambda bp: Rule("revenue_share", {"bp": bp}), st.integers(1, 5_000)),
    st.builds(lambda p, s: Rule("discount", {"paid_bp": p, "settle_bp": min(s, p)}),
              st.integers(1, 10_000), st.integers(0, 10_000)),
    st.builds(lambda f: Rule("fixed", {"fen": f}), st.integers(0, 10_000)),
    st.just(Rule("tiered", {"tiers": TIERS})),
    st.just(Rule("none", {})),
)


@given(st.lists(st.integers(0, 5_000_000), min_size=1, max_size=31))
def test_tiered_commission_telescopes_over_the_month(days: list[int]) -> None:
    rule = Rule("tiered", {"tiers": TIERS})
    month = 0
    total = 0
    for gross in days:
        c = commission(rule, gross_fen=gross, sales=1, refunds_fen=0, month_before_fen=month)
        assert 0 <= c.commission_fen <= gross
        total += c.commission_fen
        month += gross
    assert total == tiered_total(month, TIERS)


@given(st.integers(0, 10**12), st.sampled_from(["70/20/10", "60/30/10", "1/1/1", "0/100/0"]))
def test_card_fee_shares_sum_to_the_fee(fee: int, split: str) -> None:
    assert sum(card_shares(fee, split)) == fee


ACC = Accounts(revenue=1, fees=2, issuer=lambda bank: 100 + len(bank), network=3)


@given(rules, st.integers(0, 10**10), st.integers(0, 1_000), st.integers(0, 10**9),
       st.integers(0, 10**8), st.dictionaries(st.sampled_from(["icbc", "ccb", "abc"]),
                                              st.integers(0, 10**9), max_size=3))
def test_clearing_conserves_money(rule: Rule, gross: int, sales: int, refunds: int,
                                  deductions: int, card: dict[str, int]) -> None:
    f = Figures(7, 50, sales, gross, 1, refunds, card, deductions)
    p = plan_merchant(f, rule, None, "2026-11-25", ACC)
    balance: dict[int, int] = {}
    for r in p.requests:
        assert r.amount is not None and r.amount > 0
        balance[r.debit_account_id] = balance.get(r.debit_account_id, 0) - r.amount
        balance[r.credit_account_id] = balance.get(r.credit_account_id, 0) + r.amount
    assert sum(balance.values()) == 0  # double entry
    # the merchant's payable moves by exactly what its net says beyond gross - refunds
    assert gross - refunds + balance.get(50, 0) == p.net_fen
    # what left the payable is the operator's, the issuers' and the network's
    assert -balance.get(50, 0) == balance.get(1, 0) + balance.get(2, 0) + sum(
        v for k, v in balance.items() if k not in (1, 2, 50))
    assert p.card_fee_fen <= p.commission_fen
    # re-planning is the same plan: same ids, same amounts (a re-run is a no-op)
    again = plan_merchant(f, rule, None, "2026-11-25", ACC)
    assert [(r.id, r.amount) for r in again.requests] == [(r.id, r.amount) for r in p.requests]
