"""Operators resolve difference items; every resolution is logged in ``recon_resolutions``.

- ``accept``: an item that parked no money (transit fares) is acknowledged. At once.
- ``rematch``: two open items whose suspense amounts cancel out (a record reported missing
  by one statement and its late line in the next) are closed together. No money moves.
- ``write_off``: the item's suspense goes to ``revenue_fees:recon_writeoff`` (a gain if the
  suspense held money, a loss if it lacked some). Maker-checker.
- ``pass_on``: the suspense goes to its owner, ``wallet:<msisdn>`` or ``merchant:<id>``
  (or is taken from it, for a negative item). Maker-checker.
Money-moving resolutions are proposed (``approvals.propose``, action ``recon_resolve``) and
run when a second operator approves: one transfer ``recon-resolve:<item>``
(``SUSPENSE_RESOLVE``), the item closed and the log row written in the same transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from paycell.context import Context
from paycell.errors import PaycellError
from paycell.funding.cash_common import AlreadyAppliedError, post_recorded
from paycell.ledger import TransferRequest
from paycell.ledger.chart import Code, TransferCode, system_account
from paycell.operators import approvals
from paycell.operators.model import Approval, Operator
from paycell.operators.service import require_role
from paycell.reconciliation.errors import (
    ReconItemNotFoundError,
    ReconItemResolvedError,
    ReconResolutionInvalidError,
)
from paycell.reconciliation.service import Item
from paycell.reconciliation.tables import items, resolutions

ACTIONS = ("accept", "rematch", "write_off", "pass_on")
MONEY_ACTIONS = ("write_off", "pass_on")
ACTION = "recon_resolve"


def get_item(ctx: Context, item_id: int, conn: Connection | None = None) -> Item:
    stmt = select(items).where(items.c.id == item_id)
    if conn is not None:
        row = conn.execute(stmt).first()
    else:
        with ctx.engine.connect() as c:
            row = c.execute(stmt).first()
    if row is None:
        raise ReconItemNotFoundError(f"reconciliation item {item_id} does not exist")
    return Item.of(row)


def _open(item: Item) -> None:
    if item.state != "open":
        raise ReconItemResolvedError(f"item {item.id} is {item.resolution or item.state} "
                                     "already", resolution=item.resolution)


def _note(note: str) -> str:
    note = (note or "").strip()
    if not 0 < len(note) <= 500:
        raise ReconResolutionInvalidError("a resolution needs a note of 1 to 500 characters",
                                          field="note")
    return note


def _close(conn: Connection, ctx: Context, item: Item, action: str, note: str, *,
           proposed_by: str, approved_by: str | None = None, approval_id: int | None = None,
           target: str | None = None, transfer_id: str | None = None) -> None:
    now = ctx.clock.now_us()
    done = conn.execute(update(items).where(items.c.id == item.id, items.c.state == "open")
                        .values(state="resolved", resolution=action, resolved_at=now)).rowcount
    if done != 1:
        raise ReconItemResolvedError(f"item {item.id} is resolved already")
    conn.execute(resolutions.insert().values(
        item_id=item.id, action=action, target=target, amount_fen=item.suspense_fen,
        transfer_id=transfer_id, proposed_by=proposed_by, approved_by=approved_by,
        approval_id=approval_id, note=note, created_at=now))


def _target_account(ctx: Context, target: str | None) -> int:
    from paycell.merchants.service import get_merchant
    from paycell.subscribers.service import find_by_msisdn

    kind, _, key = (target or "").partition(":")
    if kind == "wallet":
        try:
            sub = find_by_msisdn(ctx, key)
        except PaycellError:
            sub = None
        if sub is not None:
            return sub.wallet_account_id
    elif kind == "merchant" and key.isdigit():
        try:
            m = get_merchant(ctx, int(key))
        except PaycellError:
            m = None
        if m is not None and m.payable_account_id:
            return m.payable_account_id
    raise ReconResolutionInvalidError(
        "pass_on needs a target wallet:<msisdn> or merchant:<id> that exists",
        field="target")


def _check(ctx: Context, subject: str, payload: dict[str, Any]) -> None:
    item = get_item(ctx, int(payload["item_id"]))
    _open(item)
    if payload.get("action") not in MONEY_ACTIONS:
        raise ReconResolutionInvalidError(f"action is one of {', '.join(MONEY_ACTIONS)}",
                                          field="action")
    if item.suspense_fen == 0:
        raise ReconResolutionInvalidError("the item parked no money: accept it instead",
                                          field="action")
    if payload["action"] == "pass_on":
        _target_account(ctx, payload.get("target"))


def resolve(ctx: Context, operator: Operator, item_id: int, action: str, note: str, *,
            target: str | None = None, with_item: int | None = None) -> dict[str, Any]:
    """Resolve an item or propose its resolution. Returns ``{"state": "resolved"}`` or
    ``{"state": "proposed", "approval_id": ...}``. Raises ReconItemNotFoundError,
    ReconItemResolvedError, ReconResolutionInvalidError, ApprovalPendingError,
    ``operator_role_forbidden``; nothing changes on a refusal."""
    require_role(operator)
    note = _note(note)
    if action not in ACTIONS:
        raise ReconResolutionInvalidError(f"action is one of {', '.join(ACTIONS)}",
                                          field="action")
    item = get_item(ctx, item_id)
    if action in MONEY_ACTIONS:
        payload = {"item_id": item_id, "action": action, "note": note, "target": target}
        a = approvals.propose(ctx, operator, ACTION, f"recon_item:{item_id}", payload, note)
        return {"state": "proposed", "approval_id": a.id, "item_id": item_id}
    _open(item)
    if action == "accept":
        if item.suspense_fen != 0:
            raise ReconResolutionInvalidError(
                "the item parked money in suspense: write it off, pass it on or rematch it",
                field="action")
        with ctx.engine.begin() as conn:
            _close(conn, ctx, get_item(ctx, item_id, conn), "accept", note,
                   proposed_by=operator.name)
        return {"state": "resolved", "item_id": item_id}
    if with_item is None or with_item == item_id:
        raise ReconResolutionInvalidError("rematch needs the other item (with_item)",
                                          field="with_item")
    with ctx.engine.begin() as conn:
        one, two = get_item(ctx, item_id, conn), get_item(ctx, with_item, conn)
        _open(one)
        _open(two)
        if one.suspense_fen + two.suspense_fen != 0 or one.source != two.source:
            raise ReconResolutionInvalidError(
                "rematched items are of one source and their suspense amounts cancel out",
                field="with_item", sum_fen=one.suspense_fen + two.suspense_fen)
        for it, other in ((one, two), (two, one)):
            _close(conn, ctx, it, "rematch", note, proposed_by=operator.name,
                   target=f"item:{other.id}")
    return {"state": "resolved", "item_id": item_id, "with_item": with_item}


def _apply(ctx: Context, payload: dict[str, Any], approval: Approval, approver: Operator
           ) -> dict[str, Any]:
    """The approval handler: move the item's suspense and close it, once."""
    item = get_item(ctx, int(payload["item_id"]))
    action, target = payload["action"], payload.get("target")
    suspense = system_account(ctx.ledger, Code.SUSPENSE, "recon").id
    if action == "write_off":
        other = system_account(ctx.ledger, Code.REVENUE_FEES, "recon_writeoff").id
    else:
        other = _target_account(ctx, target)
    amount = item.suspense_fen
    debit, credit = (suspense, other) if amount > 0 else (other, suspense)
    tid = f"recon-resolve:{item.id}"
    req = TransferRequest(tid, debit, credit, abs(amount),
                          code=int(TransferCode.SUSPENSE_RESOLVE),
                          ref=f"reconciliation item {item.id}: {action}")

    def record(conn: Connection, _r: Any) -> None:
        _close(conn, ctx, item, action, payload["note"], proposed_by=approval.proposed_by_name,
               approved_by=approver.name, approval_id=approval.id, target=target,
               transfer_id=tid)

    try:
        post_recorded(ctx.ledger, [req], before=lambda c: _open(get_item(ctx, item.id, c)),
                      record=record)
    except AlreadyAppliedError:
        pass
    except ReconItemResolvedError:
        with ctx.engine.connect() as conn:
            done = conn.execute(select(resolutions.c.transfer_id).where(
                resolutions.c.item_id == item.id)).scalar()
        if done != tid:  # closed another way meanwhile: this approval does nothing
            raise
    return {"item_id": item.id, "action": action, "amount_fen": amount, "transfer_id": tid}


approvals.register(ACTION, _apply, check=_check)


def resolution_log(ctx: Context, *, limit: int = 100) -> list[dict[str, Any]]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(resolutions).order_by(resolutions.c.id.desc()).limit(limit))
        return [dict(r._mapping) for r in rows]
