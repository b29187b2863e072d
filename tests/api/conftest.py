"""An app on the test's database (both backends), workers off, and a client for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from paycell.api.app import create_app
from paycell.config import Settings

API_KEY = "test-operator-key"


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(_env_file=None, database_url=db_url, run_workers=False,
                    operator_api_key=API_KEY)


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=engine)) as c:
        yield c


@pytest.fixture
def auth(settings: Settings) -> dict[str, str]:
    """Headers that authenticate an operator."""
    return {"X-API-Key": settings.operator_api_key}
