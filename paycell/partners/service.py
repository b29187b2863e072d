"""Channel partners: registration (maker-checker), the expansion fee amount (maker-checker),
attaching merchants and POS terminals (one partner each at a time; history kept).

Registering records the partner ``pending`` and proposes its activation; a second
operator's approval (``approvals.approve``) opens its PARTNER_PAYABLE ledger account
``partner_payable:<id>`` and makes it ``active``. Changing a partner's expansion fee is a
proposal too. Every change is logged in ``partner_events`` (who and why).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from paycell.context import Context
from paycell.crypto import seal
from paycell.errors import PaycellError
from paycell.funding.cash_common import locking
from paycell.ledger import chart
from paycell.merchants.errors import MerchantNotFoundError
from paycell.merchants.rules import LIVE
from paycell.merchants.service import find_by_code as find_merchant
from paycell.onsite.terminal_tables import terminals
from paycell.onsite.terminals import TerminalStateError, get_terminal
from paycell.operators import approvals
from paycell.operators.model import Approval, Operator
from paycell.operators.service import require_role
from paycell.partners import rules
from paycell.partners.errors import (
    MerchantAttachedError,
    NotAttachedError,
    PartnerNotFoundError,
    PartnerStateError,
    TerminalAttachedError,
)
from paycell.partners.tables import events, merchant_links, partners, terminal_links

ACTIVATE = "partner_activate"
FEE_CHANGE = "partner_fee_change"
BANK_PURPOSE = "partner-bank-account"


@dataclass(frozen=True)
class Partner:
    id: int
    code: str
    name: str
    state: str
    contact_phone: str
    bank_name: str
    bank_account_holder: str
    bank_account_last4: str
    payable_account_id: int | None
    expansion_fee_fen: int
    created_at: int
    activated_at: int | None
    expansion_days: int | None = None  # None: the settings' rule
    expansion_min_txns: int | None = None


@dataclass(frozen=True)
class PartnerApplication:
    name: str
    contact_phone: str
    bank_name: str
    bank_account_holder: str
    bank_account_number: str
    expansion_fee_fen: int
    expansion_days: int | None = None  # a partner-specific condition, e.g. for a pilot
    expansion_min_txns: int | None = None


def to_partner(r: Any) -> Partner:
    return Partner(r.id, r.code, r.name, r.state, r.contact_phone, r.bank_name,
                   r.bank_account_holder, r.bank_account_last4, r.payable_account_id,
                   r.expansion_fee_fen, r.created_at, r.activated_at, r.expansion_days,
                   r.expansion_min_txns)


def get_partner(ctx: Context, partner_id: int) -> Partner:
    with ctx.engine.connect() as conn:
        row = conn.execute(select(partners).where(partners.c.id == partner_id)).first()
    if row is None:
        raise PartnerNotFoundError(f"partner {partner_id} does not exist")
    return to_partner(row)


def find_partner(ctx: Context, code: str) -> Partner:
    """The partner ``P10001`` (case and blanks ignored); :class:`PartnerNotFoundError`."""
    code = (code or "").strip().upper()
    row = None
    if rules.PARTNER_CODE.fullmatch(code):
        with ctx.engine.connect() as conn:
            row = conn.execute(select(partners).where(partners.c.code == code)).first()
    if row is None:
        raise PartnerNotFoundError(f"no partner {code!r}")
    return to_partner(row)


def list_partners(ctx: Context, *, state: str | None = None, before_id: int | None = None,
                  limit: int = 100) -> list[Partner]:
    """Partners, newest first."""
    stmt = select(partners).order_by(partners.c.id.desc()).limit(limit)
    if state is not None:
        stmt = stmt.where(partners.c.state == state)
    if before_id is not None:
        stmt = stmt.where(partners.c.id < before_id)
    with ctx.engine.connect() as conn:
        return [to_partner(r) for r in conn.execute(stmt)]


def partner_events(ctx: Context, partner_id: int) -> list[tuple[str, str, str | None, int]]:
    with ctx.engine.connect() as conn:
        return [(r.kind, r.actor, r.reason, r.created_at) for r in conn.execute(
            select(events).where(events.c.partner_id == partner_id).order_by(events.c.id))]


def _event(conn: Connection, partner_id: int, kind: str, actor: str, now: int,
           reason: str | None = None) -> None:
    conn.execute(events.insert().values(partner_id=partner_id, kind=kind, actor=actor[:80],
                                        reason=None if reason is None else reason[:500],
                                        created_at=now))


def _validated(a: PartnerApplication) -> dict[str, Any]:
    return {
        "name": rules.text(a.name, "name", 100),
        "contact_phone": rules.pattern(a.contact_phone, "contact_phone", rules.PHONE,
                                       "a phone number"),
        "bank_name": rules.text(a.bank_name, "bank_name", 100),
        "bank_account_holder": rules.text(a.bank_account_holder, "bank_account_holder", 200),
        "bank_account_number": rules.pattern(a.bank_account_number, "bank_account_number",
                                             rules.ACCOUNT_NUMBER, "8 to 30 digits"),
        "expansion_fee_fen": rules.expansion_fee(a.expansion_fee_fen),
        "expansion_days": rules.optional_int(a.expansion_days, "expansion_days", 0, 3650),
        "expansion_min_txns": rules.optional_int(a.expansion_min_txns, "expansion_min_txns",
                                                 1, 1_000_000),
    }


def register_partner(ctx: Context, operator: Operator, application: PartnerApplication,
                     reason: str = "new channel partner") -> tuple[Partner, Approval]:
    """Record a partner (``pending``, with its code) and propose its activation; another
    operator approves it. Raises ``partner_invalid`` (naming the ``field``),
    ``operator_role_forbidden``; nothing is written on a refusal. The bank account number is
    sealed at rest; only its last 4 digits are shown."""
    require_role(operator)
    fields = _validated(application)
    number = fields.pop("bank_account_number")
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        pid = conn.execute(partners.insert().values(
            **fields, state="pending", created_by=operator.name[:80],
            bank_account_sealed=seal(ctx.settings.secret_key, BANK_PURPOSE, number.encode()),
            bank_account_last4=number[-4:], created_at=now, updated_at=now)
            .returning(partners.c.id)).scalar_one()
        conn.execute(update(partners).where(partners.c.id == pid)
                     .values(code=rules.partner_code(pid)))
        _event(conn, pid, "registered", operator.name, now, reason)
    return get_partner(ctx, pid), propose_activation(ctx, operator, pid, reason)


def propose_activation(ctx: Context, operator: Operator, partner_id: int,
                       reason: str) -> Approval:
    """Propose activating a pending partner (again, after a rejected proposal). Raises
    ``partner_state_invalid`` unless pending, ``approval_pending`` if one is open."""
    return approvals.propose(ctx, operator, ACTIVATE, f"partner:{partner_id}",
                             {"partner_id": partner_id}, reason)


def _check_activation(ctx: Context, subject: str, payload: dict[str, Any]) -> None:
    p = get_partner(ctx, int(payload["partner_id"]))
    if subject != f"partner:{p.id}" or p.state != "pending":
        raise PartnerStateError(f"partner {p.code} is {p.state}, not pending", state=p.state)


def _activate(ctx: Context, payload: dict[str, Any], approval: Approval,
              approver: Operator) -> dict[str, Any]:
    """Open the payable account, then activate. Idempotent (an active partner stays)."""
    pid = int(payload["partner_id"])
    p = get_partner(ctx, pid)
    if p.state != "active":
        _check_activation(ctx, f"partner:{pid}", payload)
        account = chart.open_account(ctx.ledger, f"partner_payable:{pid}",
                                     chart.Code.PARTNER_PAYABLE, owner_ref=f"partner:{pid}")
        now = ctx.clock.now_us()
        with ctx.engine.begin() as conn:
            done = conn.execute(update(partners).where(
                partners.c.id == pid, partners.c.state == "pending").values(
                state="active", payable_account_id=account.id, activated_at=now,
                updated_at=now)).rowcount
            if done:
                _event(conn, pid, "activated", approver.name, now,
                       f"approval {approval.id} proposed by {approval.proposed_by_name}: "
                       f"{approval.reason}")
        p = get_partner(ctx, pid)
    return {"partner_id": p.id, "code": p.code, "state": p.state,
            "payable_account_id": p.payable_account_id}


def propose_fee_change(ctx: Context, operator: Operator, partner_id: int,
                       expansion_fee_fen: int, reason: str) -> Approval:
    """Propose a new expansion fee (20,000-200,000 fen); another operator approves. Fees
    already made payable keep their amount. Raises ``partner_invalid``,
    ``partner_not_found``, ``partner_state_invalid`` (rejected), ``approval_pending``."""
    fee = rules.expansion_fee(expansion_fee_fen)
    return approvals.propose(ctx, operator, FEE_CHANGE, f"partner:{partner_id}",
                             {"partner_id": partner_id, "expansion_fee_fen": fee}, reason)


def _check_fee(ctx: Context, subject: str, payload: dict[str, Any]) -> None:
    p = get_partner(ctx, int(payload["partner_id"]))
    rules.expansion_fee(payload.get("expansion_fee_fen"))
    if subject != f"partner:{p.id}" or p.state == "rejected":
        raise PartnerStateError(f"partner {p.code} is {p.state}", state=p.state)


def _change_fee(ctx: Context, payload: dict[str, Any], approval: Approval,
                approver: Operator) -> dict[str, Any]:
    _check_fee(ctx, f"partner:{payload['partner_id']}", payload)
    pid, fee = int(payload["partner_id"]), int(payload["expansion_fee_fen"])
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        old = conn.execute(select(partners.c.expansion_fee_fen)
                           .where(partners.c.id == pid)).scalar_one()
        if old != fee:
            conn.execute(update(partners).where(partners.c.id == pid)
                         .values(expansion_fee_fen=fee, updated_at=now))
            _event(conn, pid, "fee_changed", approver.name, now,
                   f"{old} -> {fee} fen; approval {approval.id} proposed by "
                   f"{approval.proposed_by_name}: {approval.reason}")
    return {"partner_id": pid, "expansion_fee_fen": fee}


approvals.register(ACTIVATE, _activate, check=_check_activation)
approvals.register(FEE_CHANGE, _change_fee, check=_check_fee)


# -- attachments ------------------------------------------------------------------------------
def _active_partner(conn: Connection, partner_id: int) -> Any:
    row = conn.execute(locking(conn, select(partners).where(partners.c.id == partner_id),
                               read=True)).first()
    if row is None:
        raise PartnerNotFoundError(f"partner {partner_id} does not exist")
    if row.state != "active":
        raise PartnerStateError(f"partner {row.code} is {row.state}, not active",
                                state=row.state)
    return row


def attach_merchant(ctx: Context, operator: Operator, partner_id: int,
                    merchant_code: str) -> bool:
    """Attach the merchant (any live state) to an active partner. Returns True if attached
    now, False if it already was (idempotent). Raises ``merchant_not_found``,
    ``partner_state_invalid``, ``merchant_already_attached`` (to another partner)."""
    require_role(operator)
    m = find_merchant(ctx, merchant_code)
    if m is None or m.state not in LIVE:
        raise MerchantNotFoundError(f"no live merchant {merchant_code!r}")
    return _attach(ctx, operator, partner_id, merchant_links, merchant_links.c.merchant_id,
                   m.id, m.code, MerchantAttachedError)


def attach_terminal(ctx: Context, operator: Operator, partner_id: int,
                    terminal_id: str) -> bool:
    """Attach a POS terminal (not retired) to an active partner; as ``attach_merchant``.
    Raises ``terminal_not_found``, ``terminal_state_invalid``, ``partner_state_invalid``,
    ``terminal_already_attached``."""
    require_role(operator)
    t = get_terminal(ctx, terminal_id)
    if t.state == "retired":
        raise TerminalStateError(f"terminal {t.terminal_id} is retired", state=t.state)
    with ctx.engine.connect() as conn:
        pk = conn.execute(select(terminals.c.id).where(
            terminals.c.terminal_id == t.terminal_id)).scalar_one()
    return _attach(ctx, operator, partner_id, terminal_links, terminal_links.c.terminal_pk,
                   pk, t.terminal_id, TerminalAttachedError)


def _attach(ctx: Context, operator: Operator, partner_id: int, table: Any, col: Any,
            subject_id: int, label: str, taken: type[PaycellError]) -> bool:
    now = ctx.clock.now_us()

    def refuse(holder: int) -> PaycellError:
        code = get_partner(ctx, holder).code
        return taken(f"{label} is attached to partner {code}; detach it there first",
                     partner=code)

    try:
        with ctx.engine.begin() as conn:
            _active_partner(conn, partner_id)
            cur = conn.execute(select(table.c.partner_id).where(
                col == subject_id, table.c.detached_at.is_(None))).first()
            if cur is not None:
                if cur.partner_id == partner_id:
                    return False
                holder = cur.partner_id
            else:
                holder = None
                conn.execute(table.insert().values(
                    {"partner_id": partner_id, col.name: subject_id, "attached_at": now,
                     "attached_by": operator.name[:80]}))
                _event(conn, partner_id, "attached", operator.name, now, label)
    except IntegrityError:  # attached concurrently: the partial unique index decided
        with ctx.engine.connect() as conn:
            holder = conn.execute(select(table.c.partner_id).where(
                col == subject_id, table.c.detached_at.is_(None))).scalar_one()
        if holder == partner_id:
            return False
    if holder is not None:
        raise refuse(holder)
    return True


def detach_merchant(ctx: Context, operator: Operator, partner_id: int,
                    merchant_code: str) -> None:
    """End the merchant's attachment to this partner (kept in the history). An expansion
    fee already paid stays paid; one not yet paid will not be paid to this partner.
    Raises ``merchant_not_found``, ``not_attached``."""
    require_role(operator)
    m = find_merchant(ctx, merchant_code)
    if m is None:
        raise MerchantNotFoundError(f"no merchant {merchant_code!r}")
    _detach(ctx, operator, partner_id, merchant_links, merchant_links.c.merchant_id, m.id,
            m.code)


def detach_terminal(ctx: Context, operator: Operator, partner_id: int,
                    terminal_id: str) -> None:
    """End the terminal's attachment; it still counts for the months it was attached in."""
    require_role(operator)
    t = get_terminal(ctx, terminal_id)
    with ctx.engine.connect() as conn:
        pk = conn.execute(select(terminals.c.id).where(
            terminals.c.terminal_id == t.terminal_id)).scalar_one()
    _detach(ctx, operator, partner_id, terminal_links, terminal_links.c.terminal_pk, pk,
            t.terminal_id)


def _detach(ctx: Context, operator: Operator, partner_id: int, table: Any, col: Any,
            subject_id: int, label: str) -> None:
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        done = conn.execute(update(table).where(
            col == subject_id, table.c.partner_id == partner_id, table.c.detached_at.is_(None))
            .values(detached_at=now, detached_by=operator.name[:80])).rowcount
        if not done:
            raise NotAttachedError(f"{label} is not attached to this partner")
        _event(conn, partner_id, "detached", operator.name, now, label)

