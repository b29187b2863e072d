"""Fixtures and helpers for the card, top-up and withdrawal tests.

Each test gets its own database (both backends), a ManualClock, and its own loopback bank
and carrier simulators served by uvicorn on free ports: the app talks to them over real
HTTP through ``HttpBank`` / ``HttpCarrier``. The bank texts its codes through a
``RecordingSms`` on the test's database, where the tests read them. After every test the
ledger must pass ``paycell audit``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cash_helpers import (  # type: ignore[import-not-found]
    API_KEY,
    OPERATOR,
    PIN,
    balance,
    client,
    ctx,
    fund,
    idem,
    last_code,
    msisdn,
    wallet,
)
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from paycell.clock import ManualClock
from paycell.config import Settings
from paycell.context import Context
from paycell.gateways.bank_sim import TEST_CARDS, BankSimulator
from paycell.gateways.carrier_sim import CarrierSimulator
from paycell.gateways.simkit import SimServer
from paycell.gateways.sms import RecordingSms
from paycell.subscribers.service import Subscriber

GATEWAY_TIMEOUT_S = 2.0  # a "timeout" test waits this long; a loaded CI machine must never
# need this long for a normal answer (0.5 s was exceeded under -n 2 load: flaky tests)
__all__ = ["API_KEY", "OPERATOR", "PIN", "balance", "client", "ctx", "fund", "idem",
           "last_code", "msisdn", "wallet"]

CARDS = {behaviour: pan for pan, (behaviour, _, _) in TEST_CARDS.items()
         if behaviour != "approve"}
GOOD_CARD = "6222020000000007"  # ICBC, plenty of money
POOR_CARD = "6222020000000015"  # ICBC, balance 0
BLOCKED_CARD = "6222020000000023"
CCB_CARD = "6217000000000006"  # any Luhn-valid number works; BIN 621700 is CCB


@dataclass
class Sims:
    bank: BankSimulator
    carrier: CarrierSimulator
    bank_url: str
    carrier_url: str
    http: httpx.Client

    def card(self, pan: str, **setup: Any) -> dict[str, Any]:
        r = self.http.put(f"{self.bank_url}/_sim/cards/{pan}", json=setup)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def next_bank(self, pan: str, *behaviours: str) -> None:
        r = self.http.post(f"{self.bank_url}/_sim/cards/{pan}/next",
                           json={"behaviours": list(behaviours)})
        assert r.status_code == 200, r.text

    def settle_bank(self, reference: str, outcome: str, reason: str | None = None) -> None:
        r = self.http.post(f"{self.bank_url}/_sim/operations/{reference}/settle",
                           json={"outcome": outcome, "reason": reason})
        assert r.status_code == 200, r.text

    def line(self, msisdn: str, **setup: Any) -> dict[str, Any]:
        url = f"{self.carrier_url}/_sim/lines/{quote(msisdn)}"
        r = self.http.put(url, json=setup) if setup else self.http.get(url)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def next_carrier(self, msisdn: str, *behaviours: str) -> None:
        r = self.http.post(f"{self.carrier_url}/_sim/lines/{quote(msisdn)}/next",
                           json={"behaviours": list(behaviours)})
        assert r.status_code == 200, r.text


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sims(engine: Engine, clock: ManualClock) -> Iterator[Sims]:
    bank = BankSimulator(RecordingSms(engine, clock), clock=clock, hang_s=5, delay_s=60)
    carrier = CarrierSimulator(clock=clock, hang_s=5, delay_s=60)
    bank_server = SimServer(bank.app(), on_stop=bank.close).start()
    carrier_server = SimServer(carrier.app(), on_stop=carrier.close).start()
    http = httpx.Client(timeout=10)
    try:
        yield Sims(bank, carrier, bank_server.url, carrier_server.url, http)
    finally:
        http.close()
        bank_server.stop()
        carrier_server.stop()


@pytest.fixture
def settings(db_url: str, sims: Sims) -> Settings:
    return Settings(_env_file=None, database_url=db_url, run_workers=False,
                    operator_api_key=API_KEY, access_token_ttl_s=90 * 86_400,
                    simulators=False, bank_url=sims.bank_url, carrier_url=sims.carrier_url,
                    gateway_timeout_s=GATEWAY_TIMEOUT_S)


def bind_card(client: TestClient, ctx: Context, sub: Subscriber, auth: dict[str, str],
              pan: str = GOOD_CARD) -> dict[str, Any]:
    """Bind a card through the API, reading the bank's SMS code: the active card."""
    r = client.post("/v1/wallet/cards", json={"card_number": pan}, headers=idem(**auth))
    assert r.status_code == 201, r.text
    card: dict[str, Any] = r.json()
    r = client.post(f"/v1/wallet/cards/{card['id']}/confirm",
                    json={"code": last_code(ctx, sub.msisdn)}, headers=idem(**auth))
    assert r.status_code == 200, r.text
    bound: dict[str, Any] = r.json()
    assert bound["state"] == "active"
    return bound


def topup(client: TestClient, auth: dict[str, str], amount_fen: int, *,
          source: str = "card", status: int = 201, **more: Any) -> dict[str, Any]:
    r = client.post("/v1/wallet/topups", json={"source": source, "amount_fen": amount_fen,
                                                **more}, headers=idem(**auth))
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    return body


def withdraw(client: TestClient, auth: dict[str, str], amount_fen: int, *,
             pin: str = PIN, status: int = 201, **more: Any) -> dict[str, Any]:
    r = client.post("/v1/wallet/withdrawals",
                    json={"amount_fen": amount_fen, "pin": pin, **more}, headers=idem(**auth))
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    return body
