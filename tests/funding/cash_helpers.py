"""Fixtures and helpers for the voucher, agent and P2P tests: an app on the test's database
(both backends) with a ManualClock and workers off, wallets opened and logged in through
the subscribers' services, and an audit of the ledger after every test."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from paycell.api.app import create_app
from paycell.clock import ManualClock
from paycell.config import Settings
from paycell.context import Context
from paycell.gateways.sms import RecordingSms
from paycell.ledger import TransferRequest
from paycell.ledger.audit import audit
from paycell.ledger.chart import Code, TransferCode, system_account
from paycell.subscribers.service import Subscriber, open_account
from paycell.subscribers.tokens import login

API_KEY = "test-operator-key"
PIN = "730419"
OPERATOR = {"X-API-Key": API_KEY}
_n = itertools.count(1)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings(db_url: str) -> Settings:
    # Tests move the clock by days: access tokens outlive them.
    return Settings(_env_file=None, database_url=db_url, run_workers=False,
                    operator_api_key=API_KEY, access_token_ttl_s=30 * 86_400)


@pytest.fixture
def client(settings: Settings, engine: Engine, clock: ManualClock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=engine, clock=clock)) as c:
        yield c
    report = audit(engine)
    assert report.ok, [c.detail for c in report.checks if not c.ok]


@pytest.fixture
def ctx(client: TestClient) -> Context:
    """The app's own context: the same clock, ledger and recorded SMS."""
    c: Context = client.app.state.ctx  # type: ignore[attr-defined]
    return c


def idem(**more: str) -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4()), **more}


def msisdn() -> str:
    """A fresh, valid Chinese mobile number."""
    return f"+86138{next(_n) + 10_000_000:08d}"[:14]


def wallet(ctx: Context, number: str | None = None, pin: str = PIN,
           **kw: Any) -> tuple[Subscriber, dict[str, str]]:
    """Open a wallet and log in: the subscriber and its Authorization header."""
    sub = open_account(ctx, number or msisdn(), pin, **kw)
    tokens, _ = login(ctx, sub.msisdn, pin, str(uuid.uuid4()))
    return sub, {"Authorization": f"Bearer {tokens.access_token}"}


def fund(ctx: Context, sub: Subscriber, amount_fen: int) -> None:
    """Credit the wallet from a test bank's clearing account (no guards)."""
    source = system_account(ctx.ledger, Code.BANK_CLEARING, "testbank")
    ctx.ledger.post_one(TransferRequest(f"test:fund:{uuid.uuid4()}", source.id,
                                        sub.wallet_account_id, amount_fen,
                                        code=TransferCode.TOPUP_BANK, ref="test funding"))


def balance(ctx: Context, sub: Subscriber) -> int:
    return ctx.ledger.account(sub.wallet_account_id).balance


def last_code(ctx: Context, number: str) -> str:
    """The six-digit code in the newest text to ``number``."""
    text = RecordingSms(ctx.engine, ctx.clock).last_to(number)
    assert text is not None, f"no SMS to {number}"
    found = re.search(r"\b(\d{6})\b", text)
    assert found, text
    return found.group(1)
