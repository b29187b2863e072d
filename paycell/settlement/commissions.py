"""Setting commission rules and deductions: operator actions with maker-checker.

One operator proposes (``propose_rule``, ``propose_deduction``), another approves through
``paycell.operators.approvals``; the approval's handler writes the row, idempotently (keyed
by the approval). Refusals, before anything is written: ``commission_rule_invalid``,
``settlement_invalid``, ``merchant_not_found``, ``business_date_cleared``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, select

from paycell.context import Context
from paycell.funding.cash_common import insert_ignore
from paycell.merchants.service import get_merchant
from paycell.operators import approvals
from paycell.operators.model import Approval, Operator
from paycell.settlement.calendar import parse_date
from paycell.settlement.errors import BusinessDateClearedError, SettlementInvalidError
from paycell.settlement.rules import NONE, Rule, parse_rule, rule_of
from paycell.settlement.tables import days, deductions, rules

SET_RULE = "settlement_rule_set"
DEDUCT = "settlement_deduction"


@dataclass(frozen=True, slots=True)
class RuleVersion:
    id: int | None
    merchant_id: int
    effective_from: str
    rule: Rule
    proposed_by: str
    approved_by: str

    def out(self) -> dict[str, Any]:
        return {"id": self.id, "merchant_id": self.merchant_id,
                "effective_from": self.effective_from, "kind": self.rule.kind,
                "params": self.rule.params, "proposed_by": self.proposed_by,
                "approved_by": self.approved_by}


def _version(r: Any) -> RuleVersion:
    return RuleVersion(r.id, r.merchant_id, r.effective_from, rule_of(r.kind, r.params),
                       r.proposed_by, r.approved_by)


def checked_date(text: str, field: str = "business_date") -> str:
    try:
        return parse_date(text).isoformat()
    except (ValueError, TypeError) as exc:
        raise SettlementInvalidError(str(exc), field=field) from None


def propose_rule(ctx: Context, operator: Operator, *, merchant_id: int, effective_from: str,
                 kind: str, params: dict[str, Any] | None, reason: str) -> Approval:
    """Propose a merchant's rule from ``effective_from`` on; a second operator approves."""
    payload = {"merchant_id": merchant_id, "effective_from": effective_from, "kind": kind,
               "params": params or {}}
    _check_rule(ctx, f"merchant:{merchant_id}", payload)
    return approvals.propose(ctx, operator, SET_RULE, f"merchant:{merchant_id}:rule",
                             payload, reason)


def _check_rule(ctx: Context, subject: str, payload: dict[str, Any]) -> None:
    get_merchant(ctx, int(payload["merchant_id"]))
    checked_date(str(payload.get("effective_from")), "effective_from")
    parse_rule(str(payload.get("kind")), payload.get("params"))


def _set_rule(ctx: Context, payload: dict[str, Any], approval: Approval,
              approver: Operator) -> dict[str, Any]:
    rule = parse_rule(payload["kind"], payload["params"])
    mid = int(payload["merchant_id"])
    eff = checked_date(payload["effective_from"], "effective_from")
    with ctx.engine.begin() as conn:
        old = conn.execute(select(rules).where(rules.c.merchant_id == mid,
                                               rules.c.effective_from == eff)).first()
        if old is None:
            conn.execute(rules.insert().values(
                merchant_id=mid, effective_from=eff, kind=rule.kind, params=rule.to_json(),
                proposed_by=approval.proposed_by_name, approved_by=approver.name,
                approval_id=approval.id, created_at=ctx.clock.now_us()))
        elif old.approval_id != approval.id:  # a correction of the same version
            conn.execute(rules.update().where(rules.c.id == old.id).values(
                kind=rule.kind, params=rule.to_json(), proposed_by=approval.proposed_by_name,
                approved_by=approver.name, approval_id=approval.id))
    return {"merchant_id": mid, "effective_from": eff, "kind": rule.kind,
            "params": rule.params}


def rule_history(ctx: Context, merchant_id: int) -> list[RuleVersion]:
    """A merchant's rule versions, oldest first."""
    get_merchant(ctx, merchant_id)
    with ctx.engine.connect() as conn:
        return [_version(r) for r in conn.execute(select(rules).where(
            rules.c.merchant_id == merchant_id).order_by(rules.c.effective_from))]


def rules_in_force(conn: Connection, on: str) -> dict[int, tuple[int | None, Rule]]:
    """Every merchant's rule on business date ``on`` (the latest version not after it),
    as ``{merchant_id: (rule_id, rule)}``; merchants without one have ``none``."""
    out: dict[int, tuple[int | None, Rule]] = {}
    rows = conn.execute(select(rules).where(rules.c.effective_from <= on)
                        .order_by(rules.c.merchant_id, rules.c.effective_from))
    for r in rows:
        out[r.merchant_id] = (r.id, rule_of(r.kind, r.params))
    return out


def rule_on(ctx: Context, merchant_id: int, on: date) -> Rule:
    with ctx.engine.connect() as conn:
        return rules_in_force(conn, on.isoformat()).get(merchant_id, (None, NONE))[1]


# -- deductions ---------------------------------------------------------------------------
def propose_deduction(ctx: Context, operator: Operator, *, merchant_id: int,
                      business_date: str, amount_fen: int, reason: str) -> Approval:
    """Propose deducting ``amount_fen`` from a merchant's settlement of ``business_date``
    (not cleared yet); a second operator approves. Applied by that date's clearing."""
    payload = {"merchant_id": merchant_id, "business_date": business_date,
               "amount_fen": amount_fen, "reason": reason}
    _check_deduction(ctx, "", payload)
    return approvals.propose(ctx, operator, DEDUCT,
                             f"merchant:{merchant_id}:deduct:{business_date}", payload, reason)


def _check_deduction(ctx: Context, subject: str, payload: dict[str, Any]) -> None:
    get_merchant(ctx, int(payload["merchant_id"]))
    on = checked_date(str(payload.get("business_date")))
    amount = payload.get("amount_fen")
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= 10**11:
        raise SettlementInvalidError("amount_fen is a positive whole number of fen",
                                     field="amount_fen")
    reason = str(payload.get("reason") or "").strip()
    if not 0 < len(reason) <= 200:
        raise SettlementInvalidError("the reason is 1 to 200 characters", field="reason")
    with ctx.engine.connect() as conn:
        if conn.execute(select(days.c.business_date).where(days.c.business_date == on)).first():
            raise BusinessDateClearedError(f"{on} is cleared already; deduct from a later date",
                                           business_date=on)


def _deduct(ctx: Context, payload: dict[str, Any], approval: Approval,
            approver: Operator) -> dict[str, Any]:
    _check_deduction(ctx, "", payload)
    with ctx.engine.begin() as conn:
        insert_ignore(conn, deductions, merchant_id=int(payload["merchant_id"]),
                      business_date=payload["business_date"], amount_fen=payload["amount_fen"],
                      reason=str(payload["reason"]).strip()[:200],
                      proposed_by=approval.proposed_by_name, approved_by=approver.name,
                      approval_id=approval.id, created_at=ctx.clock.now_us())
    return {k: payload[k] for k in ("merchant_id", "business_date", "amount_fen")}


def deductions_of(ctx: Context, *, business_date: str | None = None,
                  merchant_id: int | None = None) -> list[dict[str, Any]]:
    stmt = select(deductions).order_by(deductions.c.id)
    if business_date:
        stmt = stmt.where(deductions.c.business_date == business_date)
    if merchant_id:
        stmt = stmt.where(deductions.c.merchant_id == merchant_id)
    with ctx.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


approvals.register(SET_RULE, _set_rule, check=_check_rule)
approvals.register(DEDUCT, _deduct, check=_check_deduction)
