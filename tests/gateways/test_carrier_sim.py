"""``HttpCarrier`` against the loopback carrier over real HTTP (no database)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from paycell.clock import ManualClock
from paycell.gateways.carrier import HttpCarrier
from paycell.gateways.carrier_sim import DEFAULT_AIRTIME_FEN, CarrierSimulator
from paycell.gateways.http import Outcome
from paycell.gateways.simkit import SimServer

NUMBER = "+8613800138000"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim(clock: ManualClock) -> Iterator[tuple[CarrierSimulator, str]]:
    carrier = CarrierSimulator(clock=clock, hang_s=3, delay_s=10)
    server = SimServer(carrier.app(), on_stop=carrier.close).start()
    try:
        yield carrier, server.url
    finally:
        server.stop()


@pytest.fixture
def carrier(sim: tuple[CarrierSimulator, str]) -> Iterator[HttpCarrier]:
    c = HttpCarrier(sim[1], name="cmcc", timeout_s=2.0)
    yield c
    c.http.close()


def test_prepaid_and_postpaid(sim: tuple[CarrierSimulator, str], carrier: HttpCarrier) -> None:
    a = carrier.charge(reference="topup:1", msisdn=NUMBER, amount_fen=1_000, currency="CNY")
    assert a.outcome is Outcome.APPROVED
    assert sim[0].line(NUMBER).airtime_fen == DEFAULT_AIRTIME_FEN - 1_000
    no = carrier.charge(reference="topup:2", msisdn=NUMBER, amount_fen=DEFAULT_AIRTIME_FEN,
                        currency="CNY")
    assert (no.outcome, no.reason) == (Outcome.REJECTED, "insufficient_airtime")
    http = httpx.Client(base_url=sim[1])
    r = http.put(f"/_sim/lines/{quote(NUMBER)}", json={"account_type": "postpaid",
                                                       "credit_limit_fen": 1_500})
    assert r.status_code == 200
    assert carrier.charge(reference="topup:3", msisdn=NUMBER, amount_fen=1_500,
                          currency="CNY").outcome is Outcome.APPROVED
    over = carrier.charge(reference="topup:4", msisdn=NUMBER, amount_fen=1, currency="CNY")
    assert over.reason == "credit_limit"
    line = http.get(f"/_sim/lines/{quote(NUMBER)}").json()
    assert line["bill_fen"] == 1_500 and line["bill_lines"][0]["reference"] == "topup:3"
    http.close()


def test_scripted_behaviours_and_status(sim: tuple[CarrierSimulator, str],
                                        carrier: HttpCarrier, clock: ManualClock) -> None:
    http = httpx.Client(base_url=sim[1])
    http.post(f"/_sim/lines/{quote(NUMBER)}/next",
              json={"behaviours": ["timeout", "delayed", "reject:fraud"]})
    assert carrier.charge(reference="c:1", msisdn=NUMBER, amount_fen=10,
                          currency="CNY").outcome is Outcome.UNKNOWN
    assert carrier.status(reference="c:1").outcome is Outcome.APPROVED
    assert carrier.charge(reference="c:2", msisdn=NUMBER, amount_fen=10,
                          currency="CNY").outcome is Outcome.PENDING
    r = http.post("/_sim/charges/c:2/settle", json={"outcome": "rejected", "reason": "nope"})
    assert r.status_code == 200
    assert carrier.status(reference="c:2").reason == "nope"
    assert carrier.charge(reference="c:3", msisdn=NUMBER, amount_fen=10,
                          currency="CNY").reason == "fraud"
    assert carrier.status(reference="c:9").outcome is Outcome.NOT_FOUND
    http.close()
