"""The settlement tests' fixtures: the cash tests' app (ManualClock, workers off, a ledger
audit after each test) with reports under the test's temp dir, and two operators."""

from __future__ import annotations

from pathlib import Path

import pytest
from cash_helpers import client, clock, ctx  # type: ignore[import-not-found]

from paycell.config import Settings
from paycell.context import Context
from paycell.operators.model import Operator
from paycell.operators.service import ensure_operator

__all__ = ["client", "clock", "ctx"]
API_KEY = "test-operator-key"


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(_env_file=None, database_url=db_url, run_workers=False,
                    operator_api_key=API_KEY, access_token_ttl_s=30 * 86_400,
                    reports_dir=str(tmp_path / "reports"))


@pytest.fixture
def maker(ctx: Context) -> Operator:
    return ensure_operator(ctx.engine, ctx.clock, "settle-maker", "operator")


@pytest.fixture
def checker(ctx: Context) -> Operator:
    return ensure_operator(ctx.engine, ctx.clock, "settle-checker", "operator")
