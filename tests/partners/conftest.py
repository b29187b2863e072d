"""The partner tests' fixtures: the cash tests' app (ManualClock, workers off, an audit of
the ledger after each test) with reports written under the test's tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
from cash_helpers import API_KEY, client, clock, ctx  # type: ignore[import-not-found]  # noqa: F401

from paycell.config import Settings


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(_env_file=None, database_url=db_url, run_workers=False,
                    operator_api_key=API_KEY, access_token_ttl_s=30 * 86_400,
                    reports_dir=str(tmp_path / "reports"))
