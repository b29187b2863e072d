"""What ``make run`` relies on: ``paycell serve`` mounts the bank and carrier simulators
under /sim and points its own adapters at them, so that a newcomer can bind a card and top
up with nothing else running. Served here by a real uvicorn on a free port."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine

from paycell.api.app import create_app
from paycell.config import Settings
from paycell.gateways.simkit import SimServer
from paycell.gateways.simulators import gateway_urls, own_base_url, simulators_on
from paycell.gateways.sms import RecordingSms
from paycell.ledger.audit import audit


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_where_the_adapters_point() -> None:
    dev = Settings(_env_file=None, host="0.0.0.0", port=8123)
    assert simulators_on(dev) and own_base_url(dev) == "http://127.0.0.1:8123"
    assert gateway_urls(dev) == ("http://127.0.0.1:8123/sim/bank",
                                 "http://127.0.0.1:8123/sim/carrier")
    real = dev.model_copy(update={"bank_url": "https://bank.example/api"})
    assert gateway_urls(real)[0] == "https://bank.example/api"
    off = dev.model_copy(update={"simulators": False})
    assert gateway_urls(off) == (None, None)
    assert own_base_url(dev.model_copy(update={"host": "::"})) == "http://[::1]:8123"


@pytest.fixture
def served(db_url: str, engine: Engine) -> Iterator[str]:
    port = _free_port()
    settings = Settings(_env_file=None, database_url=db_url, port=port, run_workers=False,
                        operator_api_key="k")
    server = SimServer(create_app(settings, engine=engine), port=port, lifespan="on").start()
    try:
        yield server.url
    finally:
        server.stop()
    assert audit(engine).ok


@pytest.mark.sqlite_only
def test_bind_a_card_and_top_up_against_the_mounted_bank(served: str, engine: Engine) -> None:
    http = httpx.Client(base_url=served, timeout=20)
    k = iter(range(100))

    def post(path: str, body: dict[str, object], **headers: str) -> httpx.Response:
        return http.post(path, json=body, headers={"Idempotency-Key": f"k{next(k)}",
                                                   **headers})

    r = post("/v1/wallet/signup", {"msisdn": "13800138000", "pin": "730419"})
    assert r.status_code == 201, r.text
    tokens = post("/v1/wallet/login", {"msisdn": "13800138000", "pin": "730419"}).json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    card = post("/v1/wallet/cards", {"card_number": "6222020000000007"}, **auth)
    assert card.status_code == 201, card.text
    text = RecordingSms(engine, _Clock()).last_to("+8613800138000")
    assert text is not None
    code = re.search(r"\b(\d{6})\b", text).group(1)  # type: ignore[union-attr]
    r = post(f"/v1/wallet/cards/{card.json()['id']}/confirm", {"code": code}, **auth)
    assert r.status_code == 200 and r.json()["state"] == "active", r.text
    t = post("/v1/wallet/topups", {"source": "card", "amount_fen": 10_000}, **auth)
    assert t.status_code == 201 and t.json()["state"] == "confirmed", t.text
    t = post("/v1/wallet/topups", {"source": "phone_bill", "amount_fen": 2_000}, **auth)
    assert t.status_code == 201 and t.json()["state"] == "confirmed", t.text
    assert http.get("/v1/wallet", headers=auth).json()["balance_fen"] == 12_000
    sim_card = http.get("/sim/bank/_sim/cards/6222020000000007").json()
    assert sim_card["balance_fen"] == 10_000_000 - 10_000
    assert http.get("/sim/carrier/_sim/lines/+8613800138000").json()["airtime_fen"] == 28_000
    http.close()


class _Clock:
    def now_us(self) -> int:
        return 0
