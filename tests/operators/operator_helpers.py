"""Fixtures for operator tests: an app on the test's database (both backends) with a
ManualClock and workers off; operators made through the service."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from paycell.api.app import create_app
from paycell.clock import ManualClock
from paycell.config import Settings
from paycell.context import Context
from paycell.operators.model import Operator
from paycell.operators.service import create_operator

API_KEY = "test-operator-key"
ROOT = {"X-API-Key": API_KEY}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(_env_file=None, database_url=db_url, run_workers=False,
                    operator_api_key=API_KEY)


@pytest.fixture
def client(settings: Settings, engine: Engine, clock: ManualClock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=engine, clock=clock)) as c:
        yield c


@pytest.fixture
def ctx(client: TestClient) -> Context:
    c: Context = client.app.state.ctx  # type: ignore[attr-defined]
    return c


def idem(**more: str) -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4()), **more}


def operator(ctx: Context, name: str, role: str = "operator") -> tuple[Operator, dict[str, str]]:
    """A new operator and the headers that sign in as it."""
    op, key = create_operator(ctx, name, role)
    return op, {"X-API-Key": key}
