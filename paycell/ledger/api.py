"""The ledger's operator API: read accounts, transfers and holds, run the audit.

Read-only on purpose: money moves only through the domain use cases (top-up, payment,
settlement, ...), never through an endpoint that posts arbitrary transfers.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from paycell.api.auth import require_operator
from paycell.api.deps import get_engine, get_ledger
from paycell.api.errors import problem_responses
from paycell.api.params import MAX_ID
from paycell.errors import InvalidRequestError, NotFoundError
from paycell.ledger import errors as e
from paycell.ledger.audit import audit
from paycell.ledger.schemas import (
    AccountList,
    AccountOut,
    AuditReportOut,
    BalanceSnapshotOut,
    HoldOut,
    TransferOut,
    TransferPage,
    code_name,
)
from paycell.ledger.store import Ledger

router = APIRouter(prefix="/ledger", tags=["ledger"], dependencies=[Depends(require_operator)],
                   responses=problem_responses(401, 422))

AccountId = Annotated[int, Path(ge=1, le=MAX_ID, description="the account's id")]
LedgerDep = Annotated[Ledger, Depends(get_ledger)]


class TransferNotFoundError(e.LedgerError, NotFoundError):
    code = "transfer_not_found"


class HoldNotFoundError(e.LedgerError, NotFoundError):
    code = "hold_not_found"


class CursorInvalidError(InvalidRequestError):
    code = "cursor_invalid"


_CURSOR = re.compile(r"^(\d{1,19}):(\d{1,19})$")


def encode_cursor(account_id: int, seq: int) -> str:
    """An opaque cursor: the account and the journal position of the last item seen."""
    return base64.urlsafe_b64encode(f"{account_id}:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, account_id: int) -> int:
    """The journal position a cursor stands for; :class:`CursorInvalidError` if it is not
    one this API made for this account."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raw = ""
    m = _CURSOR.match(raw)
    if m is None or int(m.group(1)) != account_id or int(m.group(2)) > MAX_ID:
        raise CursorInvalidError("the cursor is not one this list returned; "
                                 "start again without a cursor")
    return int(m.group(2))


@router.get("/accounts", response_model=AccountList, summary="Find an account by name")
def find_accounts(
    ledger: LedgerDep,
    name: Annotated[str, Query(min_length=1, max_length=200, description="exact name")],
) -> AccountList:
    """The account with exactly this name, as a list of zero or one item."""
    try:
        return AccountList(items=[AccountOut.of(ledger.account_by_name(name))])
    except e.AccountNotFoundError:
        return AccountList(items=[])


@router.get("/balances", response_model=BalanceSnapshotOut,
            summary="All balances of one account type, in one snapshot")
def balance_snapshot(
    ledger: LedgerDep,
    code: Annotated[int, Query(ge=0, le=2**31 - 1, description="account code, e.g. 100")],
    currency: Annotated[str, Query(pattern="^[A-Z]{3}$")] = "CNY",
    with_accounts: Annotated[bool, Query(description="list each account's balance")] = False,
) -> BalanceSnapshotOut:
    """The total of every account of a type (e.g. 100: all wallets), read in one consistent
    snapshot: what the wallets hold together at one instant, never half of a transfer."""
    rows = ledger.accounts_by_code(code, currency)
    balances = [a.balance for a in rows]
    return BalanceSnapshotOut(
        code=code, code_name=code_name(code), currency=currency, accounts=len(rows),
        total_fen=sum(balances), negative=sum(b < 0 for b in balances),
        min_balance_fen=min(balances, default=None),
        balances={str(a.id): a.balance for a in rows} if with_accounts else {})


@router.get("/accounts/{account_id}", response_model=AccountOut,
            responses=problem_responses(404), summary="An account and its balances")
def get_account(ledger: LedgerDep, account_id: AccountId) -> AccountOut:
    """The account's counters, balance and available amount; 404 ``account_not_found``."""
    return AccountOut.of(ledger.account(account_id))


@router.get("/accounts/{account_id}/transfers", response_model=TransferPage,
            responses=problem_responses(404), summary="An account's transfers, oldest first")
def list_transfers(
    ledger: LedgerDep, account_id: AccountId,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> TransferPage:
    """One page of the account's transfers in journal order. Pages never overlap or skip,
    even while new transfers are written; 422 ``cursor_invalid`` for a foreign cursor."""
    after = 0 if cursor is None else decode_cursor(cursor, account_id)
    ledger.account(account_id)  # 404 for an unknown account rather than an empty page
    rows = ledger.transfers_of(account_id, after_seq=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return TransferPage(
        items=[TransferOut.of(t) for t in rows],
        next_cursor=encode_cursor(account_id, rows[-1].seq) if more else None,
    )


@router.get("/transfers/{transfer_id}", response_model=TransferOut,
            responses=problem_responses(404), summary="A transfer")
def get_transfer(
    ledger: LedgerDep, transfer_id: Annotated[str, Path(min_length=1, max_length=200)],
) -> TransferOut:
    """The transfer with this id; 404 ``transfer_not_found``."""
    t = ledger.transfer(transfer_id)
    if t is None:
        raise TransferNotFoundError(f"no transfer {transfer_id!r}", transfer_id=transfer_id)
    return TransferOut.of(t)


@router.get("/holds/{transfer_id}", response_model=HoldOut,
            responses=problem_responses(404), summary="A hold (a pending transfer's state)")
def get_hold(
    ledger: LedgerDep, transfer_id: Annotated[str, Path(min_length=1, max_length=200)],
) -> HoldOut:
    """The hold made by the pending transfer ``transfer_id``; 404 ``hold_not_found``."""
    h = ledger.hold(transfer_id)
    if h is None:
        raise HoldNotFoundError(f"no hold {transfer_id!r}", transfer_id=transfer_id)
    return HoldOut.of(h)


@router.get("/audit", response_model=AuditReportOut, summary="Audit the whole ledger")
async def run_audit(engine: Annotated[Engine, Depends(get_engine)]) -> AuditReportOut:
    """Every invariant check of ``paycell audit``, read-only; ``ok`` is false on a violation.
    Reads the whole journal: seconds on a large ledger."""
    report = await run_in_threadpool(audit, engine)
    return AuditReportOut.of(report)
