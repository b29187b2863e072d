"""Maker-checker, for any sensitive action: one operator proposes, another approves.

A package registers a handler per action (``register("merchant_activate", handler)``);
``propose`` records the request, ``approve`` (by a different operator) runs the handler once
and stores its answer on the approval, ``reject`` closes it. At most one approval per
(action, subject) is open at a time: a unique partial index decides, so two operators
proposing the same thing at once get one approval and one ``approval_pending``.

Handlers have the signature ``handler(ctx, payload, approval, approver) -> dict`` and own
their transactions. They must be idempotent: an approval whose handler was interrupted by a
crash (left ``approving``) is taken over by the next ``approve`` after ``STALE_AFTER_S``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from paycell.context import Context
from paycell.errors import (
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    PaycellError,
)
from paycell.operators.model import Approval, Operator
from paycell.operators.service import require_role
from paycell.operators.tables import approvals

Handler = Callable[[Context, dict[str, Any], Approval, Operator], dict[str, Any]]
Check = Callable[[Context, str, dict[str, Any]], None]
STALE_AFTER_S = 60
_handlers: dict[str, tuple[Handler, Check | None]] = {}


class ApprovalNotFoundError(NotFoundError):
    code = "approval_not_found"


class ApprovalSameOperatorError(ForbiddenError):
    """Maker-checker: whoever proposed an action cannot approve it."""

    code = "approval_same_operator"


class ApprovalNotPendingError(ConflictError):
    """The approval was decided already (``state``), or its handler is running."""

    code = "approval_not_pending"


class ApprovalPendingError(ConflictError):
    """An open approval for this action and subject exists (``approval_id``)."""

    code = "approval_pending"


class ApprovalInvalidError(InvalidRequestError):
    code = "approval_invalid"


class ApprovalActionUnknownError(InvalidRequestError):
    code = "approval_action_unknown"


def register(action: str, handler: Handler, *, check: Check | None = None) -> None:
    """Make ``action`` approvable: ``handler`` runs on approval. ``check(ctx, subject,
    payload)``, if given, runs on ``propose`` so a proposal that could never succeed is
    refused at once (it raises the business error). Registering again replaces."""
    _handlers[action] = (handler, check)


def registered_actions() -> list[str]:
    return sorted(_handlers)


def _handler(action: str) -> tuple[Handler, Check | None]:
    if action not in _handlers:
        # Handlers register when their package is imported; the app imports every one.
        import paycell.api.app  # noqa: F401
    if action not in _handlers:
        raise ApprovalActionUnknownError(f"no approvable action {action!r}",
                                         known=registered_actions())
    return _handlers[action]


def _approval(row: Any) -> Approval:
    return Approval(
        id=row.id, action=row.action, subject=row.subject, payload=json.loads(row.payload),
        reason=row.reason, state=row.state, proposed_by=row.proposed_by,
        proposed_by_name=row.proposed_by_name, proposed_at=row.proposed_at,
        decided_by=row.decided_by, decided_by_name=row.decided_by_name,
        decided_at=row.decided_at, note=row.note,
        result=None if row.result is None else json.loads(row.result))


def get_approval(ctx: Context, approval_id: int) -> Approval:
    """The approval; :class:`ApprovalNotFoundError` if there is none."""
    with ctx.engine.connect() as conn:
        row = conn.execute(select(approvals).where(approvals.c.id == approval_id)).first()
    if row is None:
        raise ApprovalNotFoundError(f"approval {approval_id} does not exist")
    return _approval(row)


def _text(value: str, what: str) -> str:
    value = (value or "").strip()
    if not 0 < len(value) <= 500:
        raise ApprovalInvalidError(f"{what} is 1 to 500 characters", field=what)
    return value


def propose(ctx: Context, operator: Operator, action: str, subject: str,
            payload: dict[str, Any], reason: str) -> Approval:
    """Ask for ``action`` on ``subject``; another operator must approve it.

    Raises :class:`ApprovalActionUnknownError`, :class:`ApprovalInvalidError` (no reason,
    a payload that is not JSON), ``operator_role_forbidden`` (auditors),
    :class:`ApprovalPendingError` (one is open for the same action and subject), or the
    action's own check. Nothing is written on a refusal."""
    require_role(operator)
    _, check = _handler(action)
    reason = _text(reason, "reason")
    if not 0 < len(subject) <= 128:
        raise ApprovalInvalidError("the subject is 1 to 128 characters", field="subject")
    try:
        body = json.dumps(payload, sort_keys=True)
    except (TypeError, ValueError):
        raise ApprovalInvalidError("the payload must be a JSON object",
                                   field="payload") from None
    if check is not None:
        check(ctx, subject, payload)
    now = ctx.clock.now_us()
    try:
        with ctx.engine.begin() as conn:
            aid = conn.execute(approvals.insert().values(
                action=action, subject=subject, payload=body, reason=reason, state="pending",
                proposed_by=operator.id, proposed_by_name=operator.name, proposed_at=now,
                updated_at=now).returning(approvals.c.id)).scalar_one()
    except IntegrityError:
        open_ = list_pending(ctx, action=action, subject=subject)
        raise ApprovalPendingError(
            f"{action} on {subject} is already waiting for approval",
            approval_id=open_[0].id if open_ else None) from None
    return get_approval(ctx, aid)


def approve(ctx: Context, operator: Operator, approval_id: int) -> Approval:
    """Approve and run the action's handler, exactly once; return the approval, ``approved``
    with the handler's ``result``.

    Raises :class:`ApprovalNotFoundError`, :class:`ApprovalSameOperatorError` (the proposer
    cannot approve: 403), :class:`ApprovalNotPendingError`, ``operator_role_forbidden``. If
    the handler refuses (a business error), the approval becomes ``failed`` with the error
    in ``result`` and the error is raised; any other failure leaves it ``pending``."""
    require_role(operator)
    current = get_approval(ctx, approval_id)
    if current.proposed_by == operator.id:
        raise ApprovalSameOperatorError(
            "maker-checker: the operator who proposed this cannot approve it; "
            "another operator must", proposed_by=current.proposed_by_name)
    handler, _ = _handler(current.action)
    now = ctx.clock.now_us()
    t = approvals
    with ctx.engine.begin() as conn:
        claimed = conn.execute(update(t).where(t.c.id == approval_id, or_(
            t.c.state == "pending",
            (t.c.state == "approving") & (t.c.updated_at < now - STALE_AFTER_S * 1_000_000)))
            .values(state="approving", decided_by=operator.id, decided_by_name=operator.name,
                    updated_at=now)).rowcount
    if claimed != 1:
        state = get_approval(ctx, approval_id).state
        raise ApprovalNotPendingError(f"approval {approval_id} is {state}", state=state)
    running = get_approval(ctx, approval_id)
    try:
        result = handler(ctx, running.payload, running, operator)
    except PaycellError as exc:
        _close(ctx, approval_id, "failed", {"error": exc.code, "message": exc.message})
        raise
    except BaseException:
        with ctx.engine.begin() as conn:
            conn.execute(update(t).where(t.c.id == approval_id, t.c.state == "approving")
                         .values(state="pending", decided_by=None, decided_by_name=None,
                                 updated_at=ctx.clock.now_us()))
        raise
    _close(ctx, approval_id, "approved", result)
    return get_approval(ctx, approval_id)


def _close(ctx: Context, approval_id: int, state: str, result: dict[str, Any]) -> None:
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        conn.execute(update(approvals).where(approvals.c.id == approval_id,
                                             approvals.c.state == "approving")
                     .values(state=state, result=json.dumps(result, default=str),
                             decided_at=now, updated_at=now))


def reject(ctx: Context, operator: Operator, approval_id: int, note: str) -> Approval:
    """Close a pending approval without acting. Any acting operator may reject, the proposer
    too (withdrawing it). Raises :class:`ApprovalNotFoundError`,
    :class:`ApprovalNotPendingError`, :class:`ApprovalInvalidError` (no note)."""
    require_role(operator)
    note = _text(note, "note")
    get_approval(ctx, approval_id)
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        done = conn.execute(update(approvals).where(approvals.c.id == approval_id,
                                                    approvals.c.state == "pending")
                            .values(state="rejected", decided_by=operator.id,
                                    decided_by_name=operator.name, decided_at=now,
                                    note=note, updated_at=now)).rowcount
    found = get_approval(ctx, approval_id)
    if done != 1:
        raise ApprovalNotPendingError(f"approval {approval_id} is {found.state}",
                                      state=found.state)
    return found


def list_pending(ctx: Context, *, action: str | None = None, subject: str | None = None,
                 limit: int = 100) -> list[Approval]:
    """Open approvals (pending, or with their handler running), oldest first."""
    stmt = (select(approvals).where(approvals.c.state.in_(("pending", "approving")))
            .order_by(approvals.c.id).limit(limit))
    if action is not None:
        stmt = stmt.where(approvals.c.action == action)
    if subject is not None:
        stmt = stmt.where(approvals.c.subject == subject)
    with ctx.engine.connect() as conn:
        return [_approval(r) for r in conn.execute(stmt)]


def list_approvals(ctx: Context, *, state: str | None = None, before_id: int | None = None,
                   limit: int = 50) -> list[Approval]:
    """Approvals in any state (or one), newest first."""
    stmt = select(approvals).order_by(approvals.c.id.desc()).limit(limit)
    if state is not None:
        stmt = stmt.where(approvals.c.state == state)
    if before_id is not None:
        stmt = stmt.where(approvals.c.id < before_id)
    with ctx.engine.connect() as conn:
        return [_approval(r) for r in conn.execute(stmt)]
