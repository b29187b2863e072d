"""Helpers for the subscribers' tests: fund wallets straight from a system account (top-ups
belong to the funding package), sign up and log in through the API."""

from __future__ import annotations

import itertools
from typing import Any

from fastapi.testclient import TestClient

from paycell.context import Context
from paycell.ledger import TransferFlags, TransferRequest
from paycell.ledger.chart import Code, TransferCode, open_account, system_account
from paycell.subscribers.limits import (
    all_or_nothing,
    guard_inflow,
    guard_outflow,
    lock_subscribers,
)
from paycell.subscribers.service import Subscriber

_n = itertools.count(1)
PIN = "730419"


def fund(ctx: Context, sub: Subscriber, amount_fen: int, tid: str | None = None) -> str:
    """Credit the wallet from the test bank's clearing account (no limits, no guards)."""
    source = system_account(ctx.ledger, Code.BANK_CLEARING, "testbank")
    tid = tid or f"test:fund:{next(_n)}"
    ctx.ledger.post_one(TransferRequest(tid, source.id, sub.wallet_account_id, amount_fen,
                                        code=TransferCode.TOPUP_BANK, ref="test funding"))
    return tid


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"k-{next(_n)}"}


def signup(client: TestClient, msisdn: str, pin: str = PIN, **extra: Any) -> dict[str, Any]:
    r = client.post("/v1/wallet/signup", json={"msisdn": msisdn, "pin": pin, **extra},
                    headers=key())
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def login(client: TestClient, msisdn: str, pin: str = PIN) -> dict[str, Any]:
    r = client.post("/v1/wallet/login", json={"msisdn": msisdn, "pin": pin}, headers=key())
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def bearer(tokens: dict[str, Any], **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}", **more}


def merchant(ctx: Context) -> int:
    return open_account(ctx.ledger, "merchant_payable:test:shop", Code.MERCHANT_PAYABLE).id


def pay(ctx: Context, sub: Subscriber, amount_fen: int, *, to: int | None = None,
        to_sub: Subscriber | None = None, hold: bool = False,
        code: int = TransferCode.PURCHASE, tid: str | None = None) -> str:
    """Money out of the wallet as funding/payments would move it: guarded, all or nothing."""
    tid = tid or f"test:pay:{next(_n)}"
    credit = to_sub.wallet_account_id if to_sub else (to or merchant(ctx))

    def before(conn: Any) -> None:
        if to_sub is not None:
            lock_subscribers(conn, sub.id, to_sub.id)
        guard_outflow(conn, sub.id, amount_fen, ctx.clock.now_us(), settings=ctx.settings)
        if to_sub is not None:
            guard_inflow(conn, to_sub.id, amount_fen, settings=ctx.settings)

    req = TransferRequest(tid, sub.wallet_account_id, credit, amount_fen, code=code,
                          flags=TransferFlags.PENDING if hold else 0, ref="test payment")
    ctx.ledger.post([req], before=before, hook=all_or_nothing)
    return tid
