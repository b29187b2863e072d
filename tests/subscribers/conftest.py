"""Subscribers' tests: a context and an app on the test's database (both backends), one
ManualClock shared by both, workers off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from paycell.api.app import create_app
from paycell.clock import ManualClock
from paycell.config import Settings
from paycell.context import Context, build_context
from paycell.ledger.audit import audit

API_KEY = "test-operator-key"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(_env_file=None, database_url=db_url, run_workers=False,
                    operator_api_key=API_KEY)


@pytest.fixture
def ctx(engine: Engine, settings: Settings, clock: ManualClock) -> Context:
    return build_context(engine, settings=settings, clock=clock)


@pytest.fixture
def client(settings: Settings, engine: Engine, clock: ManualClock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=engine, clock=clock)) as c:
        yield c


@pytest.fixture
def operator() -> dict[str, str]:
    return {"X-API-Key": API_KEY}


@pytest.fixture(autouse=True)
def _ledger_stays_clean(request: pytest.FixtureRequest) -> Iterator[None]:
    """``paycell audit`` is clean after every test that touched a database."""
    engine = request.getfixturevalue("engine") if "engine" in request.fixturenames else None
    yield
    if engine is not None:
        report = audit(engine)
        assert report.ok, [c for c in report.checks if not c.ok]
