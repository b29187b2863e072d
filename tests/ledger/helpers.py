"""Small helpers shared by the ledger tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text

from paycell.ledger import Ledger, TransferFlags, TransferRequest

TABLES = ("ledger_accounts", "ledger_transfers", "ledger_holds", "ledger_chain_head")


def snapshot(engine: Engine) -> dict[str, list[Any]]:
    """Every row of every ledger table, to show that a refusal wrote nothing."""
    with engine.connect() as c:
        return {t: sorted(tuple(r) for r in c.execute(text(f"SELECT * FROM {t}")))
                for t in TABLES}


def tx(tid: str, dr: int, cr: int, amount: int, flags: int = 0, **kw: Any) -> TransferRequest:
    return TransferRequest(id=tid, debit_account_id=dr, credit_account_id=cr, amount=amount,
                           flags=flags, **kw)


def post_hold(tid: str, pending_id: str, amount: int | None = None) -> TransferRequest:
    return TransferRequest(id=tid, flags=TransferFlags.POST_PENDING, pending_id=pending_id,
                           amount=amount, ledger=None)


def void_hold(tid: str, pending_id: str) -> TransferRequest:
    return TransferRequest(id=tid, flags=TransferFlags.VOID_PENDING, pending_id=pending_id,
                           ledger=None)


def balances(ledger: Ledger, *ids: int) -> list[int]:
    return [ledger.account(i).balance for i in ids]
