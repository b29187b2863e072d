"""Schemathesis over the whole OpenAPI: every operation, with generated valid and invalid
input, authenticated as the caller it is for (operator, subscriber, merchant, terminal).

Checked on every response: no 5xx; every 4xx is ``application/problem+json`` with a stable
``code``. Requests go through the app in process (the ASGI transport), signed exactly as a
real merchant or terminal signs them, on SQLite and PostgreSQL (PostgreSQL refuses things
SQLite takes, e.g. NUL characters in text).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from cash_helpers import (  # type: ignore[import-not-found]
    OPERATOR,
    client,
    clock,
    ctx,
    fund,
    settings,
    wallet,
)
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from paycell.clock import ManualClock
from paycell.context import Context
from paycell.ledger import chart
from paycell.ledger.model import TransferRequest
from paycell.merchants.service import add_store, create_active_merchant
from paycell.merchants.signing import MerchantAuth
from paycell.onsite.pos_sim import TerminalAuth
from paycell.onsite.terminals import register_terminal

__all__ = ["client", "clock", "ctx", "settings"]

EXAMPLES = 8  # per operation and generation mode


@pytest.fixture
def callers(ctx: Context, clock: ManualClock) -> dict[str, Any]:
    """One caller of each kind, with what it needs to authenticate."""
    sub, bearer = wallet(ctx)
    fund(ctx, sub, 500_000)
    shop = create_active_merchant(ctx, name="Fuzz Shop", category="retail")
    store = add_store(ctx, shop.merchant.id, "S1", "Fuzz store", "1 Road", "fuzz")
    bank = chart.system_account(ctx.ledger, chart.Code.BANK_CLEARING, "fuzz")
    assert shop.merchant.payable_account_id is not None
    ctx.ledger.post_one(TransferRequest("fuzz-deposit-funds", bank.id,
                                        shop.merchant.payable_account_id, 200_000))
    assert shop.merchant.code is not None
    term = register_terminal(ctx, shop.merchant.code, store.code, "fuzz")
    return {
        "subscriber": bearer,
        "merchant": MerchantAuth(shop.key_id, shop.secret, clock=clock),
        "terminal": TerminalAuth(term.terminal.terminal_id, bytes.fromhex(term.key_hex),
                                 clock=clock),
    }


def caller_for(path: str) -> str:
    if path.startswith(("/v1/wallet", "/v1/subscribers/me")):
        return "subscriber"
    if path.startswith(("/v1/merchant", "/v1/payments")):
        return "merchant"
    if path.startswith("/v1/terminal"):
        return "terminal"
    return "operator"


def send(client: TestClient, callers: dict[str, Any], case: Any) -> httpx.Response:
    """The case as its caller would send it: operator key, bearer token, or signed."""
    kw = case.as_transport_kwargs(base_url="http://testserver")
    kind = caller_for(case.path)
    headers = {k: v for k, v in (kw.get("headers") or {}).items() if v is not None}
    auth: httpx.Auth | None = None
    if kind == "operator":
        headers.update(OPERATOR)
    elif kind == "subscriber":
        headers.update(callers["subscriber"])
    else:
        auth = callers[kind]
    request: dict[str, Any] = {"params": kw.get("params"), "headers": headers}
    for field in ("json", "content", "data"):
        if field in kw:
            request[field] = kw[field]
    return client.request(kw["method"], kw["url"], auth=auth, **request)


def check(case: Any, r: httpx.Response) -> None:
    where = f"{case.method} {case.formatted_path} -> {r.status_code}: {r.text[:300]}"
    assert r.status_code < 500, where
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json"), where
        body = r.json()
        assert isinstance(body.get("code"), str) and body["code"], where


def test_no_server_errors_and_every_error_is_a_problem_with_a_code(
        client: TestClient, callers: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
    # A 500 comes back as a response (not an exception) to be reported with its operation.
    client = TestClient(client.app, raise_server_exceptions=False)
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) > 50
    failures: list[str] = []
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=op.as_strategy(generation_mode=mode))
            @hsettings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                       suppress_health_check=list(HealthCheck), database=None)
            def run(case: Any) -> None:
                check(case, send(client, callers, case))

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to break: no input at all
            except AssertionError as exc:
                failures.append(str(exc).splitlines()[0])
    assert failures == [], "\n".join(failures)
