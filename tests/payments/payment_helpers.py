"""Fixtures for the payment-order tests: the cash tests' app (ManualClock, workers off,
audit after each test), an onboarded merchant that signs its requests, and shortcuts."""

from __future__ import annotations

from typing import Any

from cash_helpers import (  # type: ignore[import-not-found]
    OPERATOR,
    PIN,
    fund,
    idem,
    last_code,
    msisdn,
    wallet,
)
from fastapi.testclient import TestClient

from paycell.context import Context
from paycell.merchants.model import OnboardedMerchant
from paycell.merchants.signing import MerchantAuth


def signed(ctx: Context, m: OnboardedMerchant) -> MerchantAuth:
    """httpx auth that signs as ``m`` with the app's (manual) clock."""
    return MerchantAuth(m.key_id, m.secret, clock=ctx.clock)


def order_body(payer: str, n: int = 1, **over: Any) -> dict[str, Any]:
    return {"out_trade_no": f"ORD-{n}", "amount_fen": 4990, "subject": "Two paperbacks",
            "payer_msisdn": payer, **over}


def create(client: TestClient, ctx: Context, m: OnboardedMerchant, body: dict[str, Any]
           ) -> Any:
    return client.post("/v1/payments", json=body, auth=signed(ctx, m))


def balance(ctx: Context, account_id: int) -> int:
    return ctx.ledger.account(account_id).balance


__all__ = ["OPERATOR", "PIN", "balance", "create", "fund", "idem", "last_code", "msisdn",
           "order_body", "signed", "wallet"]
