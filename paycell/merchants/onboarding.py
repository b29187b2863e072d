"""Merchant onboarding and lifecycle: apply -> review -> approval by a second operator
(maker-checker, ``paycell.operators.approvals``) -> active; suspend, reinstate, terminate;
or reject an application. Every change is logged in ``merchant_events`` (who and why).

Activation opens the merchant's MERCHANT_PAYABLE ledger account (``merchant_payable:{id}``)
and its first webhook secret.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from paycell.config import Settings
from paycell.context import Context
from paycell.crypto import seal
from paycell.ledger import chart
from paycell.merchants import rules
from paycell.merchants.credentials import issue_credential, revoke_all
from paycell.merchants.errors import MerchantStateError
from paycell.merchants.model import Merchant, OnboardedMerchant
from paycell.merchants.service import (
    get_merchant,
    lock_merchant,
    new_webhook_secret,
    record_event,
    webhook_secrets,
)
from paycell.merchants.tables import merchants
from paycell.operators import approvals
from paycell.operators.model import Approval, Operator
from paycell.operators.service import ensure_operator, require_role

ACTIVATE = "merchant_activate"
TERMINATE = "merchant_terminate"
BANK_PURPOSE = "merchant-bank-account"
# suspend, reinstate, terminate, reject_application: (ctx, operator, merchant id, reason)
Lifecycle = Callable[[Context, Operator, int, str], Merchant]


@dataclass(frozen=True)
class Application:
    """What a merchant applies with: the business, its settlement bank account, a contact."""

    name: str
    company: str
    category: str
    contact_name: str
    contact_phone: str
    contact_email: str
    bank_name: str
    bank_account_holder: str
    bank_account_number: str
    notify_url: str | None = None


def _validated(a: Application, settings: Settings) -> dict[str, Any]:
    r = rules
    return {
        "name": r.text(a.name, "name", 100),
        "company": r.text(a.company, "company", 200),
        "category": r.pattern(a.category, "category", r.CATEGORY,
                              "a lower-case word like " + ", ".join(r.SUGGESTED_CATEGORIES)),
        "contact_name": r.text(a.contact_name, "contact_name", 100),
        "contact_phone": r.pattern(a.contact_phone, "contact_phone", r.PHONE,
                                   "a phone number"),
        "contact_email": r.pattern(a.contact_email, "contact_email", r.EMAIL,
                                   "an e-mail address"),
        "bank_name": r.text(a.bank_name, "bank_name", 100),
        "bank_account_holder": r.text(a.bank_account_holder, "bank_account_holder", 200),
        "bank_account_number": r.pattern(a.bank_account_number.replace(" ", ""),
                                         "bank_account_number", r.ACCOUNT_NUMBER,
                                         "8 to 30 digits"),
        "default_notify_url": r.notify_url(a.notify_url, settings),
    }


def apply(ctx: Context, application: Application, *, actor: str,
          request_key: str | None = None) -> Merchant:
    """Record an application (state ``applied``) and give the merchant its code. With a
    ``request_key`` a repeat returns the merchant it made first. Raises
    ``merchant_invalid`` (naming the ``field``); nothing is written on a refusal."""
    fields = _validated(application, ctx.settings)
    number = fields.pop("bank_account_number")
    now = ctx.clock.now_us()
    if request_key is not None:
        with ctx.engine.connect() as conn:
            old = conn.execute(select(merchants.c.id)
                               .where(merchants.c.request_key == request_key)).first()
        if old is not None:
            return get_merchant(ctx, old.id)
    with ctx.engine.begin() as conn:
        mid = conn.execute(merchants.insert().values(
            **fields, state="applied", request_key=request_key,
            bank_account_sealed=seal(ctx.settings.secret_key, BANK_PURPOSE, number.encode()),
            bank_account_last4=number[-4:], created_at=now, updated_at=now)
            .returning(merchants.c.id)).scalar_one()
        conn.execute(update(merchants).where(merchants.c.id == mid)
                     .values(code=rules.merchant_code(mid)))
        record_event(conn, mid, "applied", actor, now)
    return get_merchant(ctx, mid)


def _transition(ctx: Context, merchant_id: int, action: str, actor: str,
                reason: str | None, **values: Any) -> Merchant:
    """Move the merchant by ``action`` under its row lock; a repeat of the same action that
    already took effect returns the merchant unchanged (idempotent)."""
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        row = lock_merchant(conn, merchant_id)
        target = rules.TRANSITIONS[action][1]
        if row.state != target:
            rules.next_state(row.state, action)
            conn.execute(update(merchants).where(merchants.c.id == merchant_id)
                         .values(state=target, updated_at=now, **values))
            if action == "terminate":
                revoke_all(conn, merchant_id, now)
            record_event(conn, merchant_id, action, actor, now, reason)
    return get_merchant(ctx, merchant_id)


def _reason(reason: str | None) -> str:
    return rules.text(reason, "reason", 500)


def start_review(ctx: Context, operator: Operator, merchant_id: int,
                 note: str | None = None) -> Merchant:
    """applied -> in_review (an operator checks the documents). Idempotent."""
    require_role(operator)
    return _transition(ctx, merchant_id, "review", operator.name, note)


def propose_activation(ctx: Context, operator: Operator, merchant_id: int,
                       reason: str) -> Approval:
    """Propose activating a reviewed merchant; a different operator must approve
    (``approvals.approve``), which activates it. Raises ``merchant_state_invalid`` unless
    the merchant is in review, ``approval_pending`` if a proposal is open."""
    return approvals.propose(ctx, operator, ACTIVATE, f"merchant:{merchant_id}",
                             {"merchant_id": merchant_id}, reason)


def _check_allows(action: str) -> approvals.Check:
    """The proposal check of an approvable merchant ``action``: the subject is the
    merchant of the payload, and its state allows the action now."""

    def check(ctx: Context, subject: str, payload: dict[str, Any]) -> None:
        merchant = get_merchant(ctx, int(payload["merchant_id"]))
        if subject != f"merchant:{merchant.id}":
            raise MerchantStateError("the subject is not this merchant",
                                     state=merchant.state, action=action)
        rules.next_state(merchant.state, action)

    return check


def _activate(ctx: Context, payload: dict[str, Any], approval: Approval,
              approver: Operator) -> dict[str, Any]:
    """The approval handler: open the payable account, then activate with a first webhook
    secret, in one transaction. Idempotent (an active merchant is left as it is)."""
    mid = int(payload["merchant_id"])
    merchant = get_merchant(ctx, mid)
    if merchant.state != "active":
        rules.next_state(merchant.state, "activate")
        # The ledger owns its transaction; opening by name is idempotent.
        account = chart.open_account(ctx.ledger, f"merchant_payable:{mid}",
                                     chart.Code.MERCHANT_PAYABLE, owner_ref=f"merchant:{mid}")
        now = ctx.clock.now_us()
        with ctx.engine.begin() as conn:
            row = lock_merchant(conn, mid)
            if row.state != "active":
                rules.next_state(row.state, "activate")
                conn.execute(update(merchants).where(merchants.c.id == mid).values(
                    state="active", payable_account_id=account.id, activated_at=now,
                    updated_at=now))
                new_webhook_secret(ctx, conn, mid, now)
                record_event(conn, mid, "activated", approver.name,
                             now, f"approval {approval.id} proposed by "
                                  f"{approval.proposed_by_name}: {approval.reason}"[:500])
        merchant = get_merchant(ctx, mid)
    return {"merchant_id": merchant.id, "code": merchant.code, "state": merchant.state,
            "payable_account_id": merchant.payable_account_id}


approvals.register(ACTIVATE, _activate, check=_check_allows("activate"))


def reject_application(ctx: Context, operator: Operator, merchant_id: int,
                       reason: str) -> Merchant:
    """applied / in_review -> rejected (final); an open activation proposal is rejected
    with it. Idempotent."""
    require_role(operator)
    reason = _reason(reason)
    merchant = _transition(ctx, merchant_id, "reject", operator.name, reason)
    for open_ in approvals.list_pending(ctx, action=ACTIVATE, subject=f"merchant:{merchant_id}"):
        # Being approved right now: its handler will refuse (the merchant is rejected).
        with contextlib.suppress(approvals.ApprovalNotPendingError):
            approvals.reject(ctx, operator, open_.id, f"application rejected: {reason}"[:500])
    return merchant


def suspend(ctx: Context, operator: Operator, merchant_id: int, reason: str) -> Merchant:
    """active -> suspended: its signed requests get 403 ``merchant_not_active``, its keys
    stay. Idempotent."""
    require_role(operator)
    return _transition(ctx, merchant_id, "suspend", operator.name, _reason(reason))


def reinstate(ctx: Context, operator: Operator, merchant_id: int, reason: str) -> Merchant:
    """suspended -> active. Idempotent."""
    require_role(operator)
    return _transition(ctx, merchant_id, "reinstate", operator.name, _reason(reason))


def propose_termination(ctx: Context, operator: Operator, merchant_id: int,
                        reason: str) -> Approval:
    """Propose terminating an active or suspended merchant. Termination is final, so a
    different operator must approve (``approvals.approve``), which terminates it: every
    credential is revoked at once; the payable account stays for settlement to pay out what
    is owed. Suspend first to stop a merchant at once. Raises ``merchant_state_invalid``
    unless the merchant may be terminated, ``approval_pending`` if a proposal is open."""
    return approvals.propose(ctx, operator, TERMINATE, f"merchant:{merchant_id}",
                             {"merchant_id": merchant_id, "reason": _reason(reason)}, reason)


def _terminate(ctx: Context, payload: dict[str, Any], approval: Approval,
               approver: Operator) -> dict[str, Any]:
    """The approval handler: active / suspended -> terminated, keys revoked, in one
    transaction. Idempotent (a terminated merchant is left as it is)."""
    merchant = _transition(ctx, int(payload["merchant_id"]), "terminate", approver.name,
                           f"{payload['reason']} (proposed by {approval.proposed_by_name})"[:500])
    return {"merchant_id": merchant.id, "code": merchant.code, "state": merchant.state}


approvals.register(TERMINATE, _terminate, check=_check_allows("terminate"))


def default_application(name: str, category: str, **over: Any) -> Application:
    """An application with plausible filler for whatever ``over`` does not give."""
    fields: dict[str, Any] = {"name": name, "company": f"{name} Co., Ltd.", "category": category,
              "contact_name": "Li Lei", "contact_phone": "+8613800138000",
              "contact_email": "ops@example.com", "bank_name": "Bank of Example",
              "bank_account_holder": f"{name} Co., Ltd.",
              "bank_account_number": "6222000011112222", "notify_url": None}
    fields.update(over)
    return Application(**fields)


def onboard(ctx: Context, *, name: str, category: str, **over: Any) -> OnboardedMerchant:
    """The whole onboarding as two operators would do it (``onboarding-maker`` applies,
    reviews and proposes; ``onboarding-checker`` approves), then a first HMAC credential."""
    maker = ensure_operator(ctx.engine, ctx.clock, "onboarding-maker", "operator")
    checker = ensure_operator(ctx.engine, ctx.clock, "onboarding-checker", "operator")
    app = default_application(name, category, **over)
    merchant = apply(ctx, app, actor=maker.name)
    start_review(ctx, maker, merchant.id, "documents checked")
    approval = propose_activation(ctx, maker, merchant.id, "onboarding")
    approvals.approve(ctx, checker, approval.id)
    cred, secret = issue_credential(ctx, merchant.id, actor=maker.name, label="initial")
    assert secret is not None
    return OnboardedMerchant(get_merchant(ctx, merchant.id), cred.key_id, secret,
                             webhook_secrets(ctx, merchant.id)[0])


__all__ = ["Application", "apply", "onboard", "propose_activation",
           "propose_termination", "reinstate", "reject_application", "start_review", "suspend"]
