"""``HttpBank`` against the loopback bank over real HTTP (no database): binding by SMS code,
debits and credits, every scripted behaviour, references as idempotency keys, and how
transport failures become outcomes."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from paycell.clock import ManualClock
from paycell.gateways.bank import HttpBank, luhn_complete, luhn_valid
from paycell.gateways.bank_sim import TEST_CARDS, BankSimulator
from paycell.gateways.http import Outcome
from paycell.gateways.simkit import SimServer

GOOD = "6222020000000007"


class Texts:
    """An SmsGateway that keeps what it is asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, msisdn: str, body: str) -> None:
        self.sent.append((msisdn, body))

    def code(self) -> str:
        found = re.search(r"\b(\d{6})\b", self.sent[-1][1])
        assert found
        return found.group(1)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def texts() -> Texts:
    return Texts()


@pytest.fixture
def sim(texts: Texts, clock: ManualClock) -> Iterator[tuple[BankSimulator, str]]:
    bank = BankSimulator(texts, clock=clock, hang_s=3, delay_s=60)
    server = SimServer(bank.app(), on_stop=bank.close).start()
    try:
        yield bank, server.url
    finally:
        server.stop()


@pytest.fixture
def bank(sim: tuple[BankSimulator, str]) -> Iterator[HttpBank]:
    b = HttpBank(sim[1], timeout_s=2.0)
    yield b
    b.http.close()


def _token(bank: HttpBank, texts: Texts, pan: str = GOOD, ref: str = "card:1") -> str:
    v = bank.start_verification(reference=ref, pan=pan, holder_msisdn="+8613800138000")
    assert v.status == "code_sent"
    done = bank.confirm_verification(reference=ref, code=texts.code())
    assert done.status == "verified" and done.token
    return done.token


def test_luhn() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert not luhn_valid("41111111111") and not luhn_valid("4111 1111 1111 1111")
    assert all(luhn_valid(pan) for pan in TEST_CARDS)
    assert luhn_valid(luhn_complete("622588123456789"))


def test_binding_texts_the_holder_a_code(bank: HttpBank, texts: Texts,
                                         clock: ManualClock) -> None:
    v = bank.start_verification(reference="card:a", pan=GOOD, holder_msisdn="+8613800138000")
    assert (v.status, v.bank, v.last4) == ("code_sent", "icbc", "0007")
    assert texts.sent[-1][0] == "+8613800138000" and "0007" in texts.sent[-1][1]
    wrong = "000001" if texts.code() != "000001" else "000002"
    bad = bank.confirm_verification(reference="card:a", code=wrong)
    assert (bad.status, bad.tries_left) == ("code_invalid", 2)
    ok = bank.confirm_verification(reference="card:a", code=texts.code())
    assert ok.status == "verified" and ok.token and GOOD not in ok.token
    again = bank.confirm_verification(reference="card:a", code=texts.code())
    assert again.status == "verified"  # idempotent

    bank.start_verification(reference="card:b", pan=GOOD, holder_msisdn="+8613800138000")
    clock.advance(301)
    late = bank.confirm_verification(reference="card:b", code=texts.code())
    assert (late.status, late.reason) == ("rejected", "code_expired")
    assert bank.confirm_verification(reference="card:zz", code="1").reason == \
        "verification_not_found"
    bad_pan = bank.start_verification(reference="card:c", pan="6222020000000008",
                                      holder_msisdn="+8613800138000")
    assert (bad_pan.status, bad_pan.reason) == ("rejected", "card_number_invalid")


def test_debit_and_credit_move_the_cards_balance(sim: tuple[BankSimulator, str],
                                                 bank: HttpBank, texts: Texts) -> None:
    token = _token(bank, texts)
    start = sim[0].card(GOOD).balance_fen
    d = bank.debit(reference="topup:1", token=token, amount_fen=500, currency="CNY")
    assert d.outcome is Outcome.APPROVED and d.partner_ref
    assert bank.credit(reference="w:1", token=token, amount_fen=200,
                       currency="CNY").outcome is Outcome.APPROVED
    assert sim[0].card(GOOD).balance_fen == start - 300
    # The same reference is the same operation; another body with it is refused.
    assert bank.debit(reference="topup:1", token=token, amount_fen=500, currency="CNY") == d
    assert sim[0].card(GOOD).balance_fen == start - 300
    reused = bank.debit(reference="topup:1", token=token, amount_fen=501, currency="CNY")
    assert (reused.outcome, reused.reason) == (Outcome.REJECTED, "reference_reused")
    assert bank.status(reference="topup:1") == d
    assert bank.status(reference="topup:nope").outcome is Outcome.NOT_FOUND
    forged = bank.debit(reference="topup:2", token="tok_forged", amount_fen=1, currency="CNY")
    assert (forged.outcome, forged.reason) == (Outcome.REJECTED, "invalid_token")


def test_refusals_by_the_cards_state(bank: HttpBank, texts: Texts) -> None:
    poor = _token(bank, texts, "6222020000000015", "card:p")
    r = bank.debit(reference="t:1", token=poor, amount_fen=1, currency="CNY")
    assert (r.outcome, r.reason) == (Outcome.REJECTED, "insufficient_funds")
    assert bank.credit(reference="t:2", token=poor, amount_fen=1,
                       currency="CNY").outcome is Outcome.APPROVED
    v = bank.start_verification(reference="card:x", pan="6222020000000023",
                                holder_msisdn="+8613800138000")
    assert (v.status, v.reason) == ("rejected", "card_blocked")


def test_timeout_lost_delayed(sim: tuple[BankSimulator, str], bank: HttpBank, texts: Texts,
                              clock: ManualClock) -> None:
    token = _token(bank, texts)
    http = httpx.Client(base_url=sim[1])
    assert http.post(f"/_sim/cards/{GOOD}/next", json={
        "behaviours": ["timeout", "lost", "delayed", "reject:do_not_honour"]}).status_code == 200
    timed_out = bank.debit(reference="t:1", token=token, amount_fen=100, currency="CNY")
    assert timed_out.outcome is Outcome.UNKNOWN
    assert bank.status(reference="t:1").outcome is Outcome.APPROVED  # it did happen
    lost = bank.debit(reference="t:2", token=token, amount_fen=100, currency="CNY")
    assert lost.outcome is Outcome.UNKNOWN
    assert bank.status(reference="t:2").outcome is Outcome.NOT_FOUND
    delayed = bank.debit(reference="t:3", token=token, amount_fen=100, currency="CNY")
    assert delayed.outcome is Outcome.PENDING
    assert bank.status(reference="t:3").outcome is Outcome.PENDING
    clock.advance(61)
    assert bank.status(reference="t:3").outcome is Outcome.APPROVED
    refused = bank.debit(reference="t:4", token=token, amount_fen=100, currency="CNY")
    assert (refused.outcome, refused.reason) == (Outcome.REJECTED, "do_not_honour")
    r = http.post(f"/_sim/cards/{GOOD}/next", json={"behaviours": ["explode"]})
    assert r.status_code == 422
    http.close()


def test_tokens_survive_a_restart(texts: Texts, clock: ManualClock, bank: HttpBank) -> None:
    token = _token(bank, texts)
    fresh = BankSimulator(texts, clock=clock)
    found = fresh.card_for_token(token)
    assert found is not None and found.pan == GOOD
    assert BankSimulator(texts, secret="another").card_for_token(token) is None


def test_transport_failures_become_outcomes() -> None:
    nobody = HttpBank("http://127.0.0.1:9", timeout_s=0.5)
    assert nobody.debit(reference="x", token="t", amount_fen=1,
                        currency="CNY").outcome is Outcome.UNAVAILABLE
    assert nobody.start_verification(reference="x", pan=GOOD,
                                     holder_msisdn="+8613800138000").status == "unavailable"

    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="bad gateway")

    flaky = HttpBank("http://bank.test", transport=httpx.MockTransport(broken))
    assert flaky.status(reference="x").outcome is Outcome.UNKNOWN
    assert flaky.credit(reference="x", token="t", amount_fen=1,
                        currency="CNY").outcome is Outcome.UNKNOWN

    def odd(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "maybe"})

    assert HttpBank("http://bank.test", transport=httpx.MockTransport(odd)).debit(
        reference="x", token="t", amount_fen=1, currency="CNY").outcome is Outcome.UNKNOWN
