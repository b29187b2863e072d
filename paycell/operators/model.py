"""What the rest of the platform sees of operators and approvals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROLES = ("admin", "operator", "auditor")
# Who may propose, approve or reject maker-checker actions and change merchants.
ACTING_ROLES = frozenset({"admin", "operator"})
ROOT = "root"


@dataclass(frozen=True)
class Operator:
    """A named back-office user. ``role``: ``admin`` (everything, incl. managing
    operators), ``operator`` (day-to-day work), ``auditor`` (reads only)."""

    id: int
    name: str
    role: str


@dataclass(frozen=True)
class Approval:
    """A maker-checker request: ``proposed_by`` wants ``action`` done on ``subject``; another
    operator approves (the registered handler runs, its answer is ``result``) or rejects."""

    id: int
    action: str
    subject: str
    payload: dict[str, Any]
    reason: str
    state: str  # pending | approving | approved | rejected | failed
    proposed_by: int
    proposed_by_name: str
    proposed_at: int
    decided_by: int | None = None
    decided_by_name: str | None = None
    decided_at: int | None = None
    note: str | None = None
    result: dict[str, Any] | None = field(default=None)
