"""Fixtures and helpers for merchant tests (and any test that needs a merchant): an app on
the test's database (both backends) with a ManualClock and workers off, merchants onboarded
through the real steps, and signed calls.

    from merchant_helpers import client, clock, ctx, settings, active_merchant, signed

``active_merchant(ctx, name)`` returns an ``OnboardedMerchant``; ``signed(client, m, "POST",
"/v1/...", json=...)`` sends a request signed with its key at the app's clock.
"""

from __future__ import annotations

import itertools
import json as jsonlib
import uuid
from typing import Any

from cash_helpers import (  # type: ignore[import-not-found]
    API_KEY,
    OPERATOR,
    client,
    clock,
    ctx,
    idem,
    settings,
)
from fastapi.testclient import TestClient

from paycell.context import Context
from paycell.merchants.model import OnboardedMerchant
from paycell.merchants.service import create_active_merchant
from paycell.merchants.signing import MerchantAuth, sign_headers

_n = itertools.count(1)
__all__ = ["API_KEY", "OPERATOR", "client", "clock", "ctx", "idem", "settings"]


def active_merchant(ctx: Context, name: str | None = None, category: str = "retail",
                    **application: Any) -> OnboardedMerchant:
    """An active merchant with an HMAC key and a webhook secret, onboarded for real."""
    return create_active_merchant(ctx, name=name or f"Test Shop {next(_n)}",
                                  category=category, **application)


def auth_for(m: OnboardedMerchant, ctx: Context) -> MerchantAuth:
    """httpx auth signing with the merchant's key at the app's clock."""
    return MerchantAuth(m.key_id, m.secret, clock=ctx.clock)


def signed(client: TestClient, m: OnboardedMerchant, method: str, path: str, *,
           json: Any = None, headers: dict[str, str] | None = None,
           idempotent: bool = True) -> Any:
    """Send a request signed with ``m``'s key at the app's clock (and an Idempotency-Key
    on POSTs unless ``idempotent`` is false)."""
    ctx: Context = client.app.state.ctx  # type: ignore[attr-defined]
    body = b"" if json is None else jsonlib.dumps(json).encode()
    extra = dict(headers or {})
    if method.upper() == "POST" and idempotent:
        extra.setdefault("Idempotency-Key", str(uuid.uuid4()))
    if body:
        extra.setdefault("Content-Type", "application/json")
    extra.update(sign_headers(m.key_id, m.secret, method, path, body,
                              timestamp=ctx.clock.now_us() // 1_000_000))
    return client.request(method, path, content=body, headers=extra)
