"""The payment tests' fixtures: the cash tests' app (ManualClock, workers off, an audit of
the ledger after each test) and an onboarded merchant."""

from __future__ import annotations

import pytest
from cash_helpers import client, clock, ctx, settings  # type: ignore[import-not-found]  # noqa: F401

from paycell.context import Context
from paycell.merchants.model import OnboardedMerchant
from paycell.merchants.service import create_active_merchant


@pytest.fixture
def shop(ctx: Context) -> OnboardedMerchant:  # noqa: F811
    return create_active_merchant(ctx, name="Inkwell Books", category="books",
                                  notify_url="http://127.0.0.1:9/notify")
