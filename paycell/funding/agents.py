"""Cash at agent outlets (营业厅 or third-party agents).

An agent holds an e-float (``chart.Code.AGENT_FLOAT``: a liability that cannot go below
zero). It buys float by depositing cash in the operator's bank (custody reserve -> float,
``TransferCode.AGENT_FLOAT``) and spends it on cash-in: the customer hands over cash, the
agent moves the same amount from its float to the customer's wallet (``TransferCode.CASH_IN``).
Agents authenticate with an API key of their own (header ``X-Agent-Key``), stored hashed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from paycell.context import Context
from paycell.errors import ConflictError, InvalidRequestError, NotFoundError, UnauthorizedError
from paycell.funding import cash_rules as rules
from paycell.funding.cash_common import AlreadyAppliedError, post_recorded
from paycell.funding.cash_tables import agent_transactions, agents
from paycell.ledger import Account, TransferRequest, TransferResult, chart
from paycell.ledger import errors as le
from paycell.subscribers.limits import guard_inflow
from paycell.subscribers.service import find_by_msisdn, normalise_msisdn


class AgentNotFoundError(NotFoundError):
    code = "agent_not_found"


class AgentCodeTakenError(ConflictError):
    code = "agent_code_taken"


class AgentKeyMissingError(UnauthorizedError):
    code = "authentication_required"


class AgentKeyInvalidError(UnauthorizedError):
    code = "agent_key_invalid"


class AgentFloatInsufficientError(ConflictError):
    """The cash-in is more than the agent's float (``available_fen``)."""

    code = "agent_float_insufficient"


class AgentReferenceReusedError(ConflictError):
    """This reference was used before for a different cash-in or float top-up."""

    code = "agent_reference_reused"


class RecipientNotRegisteredError(NotFoundError):
    code = "recipient_not_registered"


class AmountInvalidError(InvalidRequestError):
    code = "amount_invalid"


class AgentFieldInvalidError(InvalidRequestError):
    code = "agent_field_invalid"


@dataclass(frozen=True)
class Agent:
    id: int
    code: str
    name: str
    location: str
    float_account_id: int
    created_at: int


@dataclass(frozen=True)
class AgentTransaction:
    id: int
    agent_id: int
    kind: str  # cash_in | float_topup
    reference: str
    subscriber_id: int | None
    msisdn: str | None
    amount_fen: int
    transfer_id: str
    created_at: int


def _agent(r: Any) -> Agent:
    return Agent(r.id, r.code, r.name, r.location, r.float_account_id, r.created_at)


def _txn(r: Any) -> AgentTransaction:
    return AgentTransaction(r.id, r.agent_id, r.kind, r.reference, r.subscriber_id, r.msisdn,
                            r.amount_fen, r.transfer_id, r.created_at)


def _check(amount_fen: int, reference: str) -> None:
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
        raise AmountInvalidError("the amount is a positive number of fen")
    if not re.fullmatch(rules.REFERENCE, reference):
        raise AgentFieldInvalidError(
            "a reference is 1 to 64 letters, digits and . _ : / -, starting with a letter "
            "or digit", field="reference")


# -- operators ------------------------------------------------------------------------------


def create_agent(ctx: Context, code: str, name: str, location: str, *,
                 request_key: str | None = None) -> tuple[Agent, str | None]:
    """Register an agent with an empty float; return it and its API key, shown only here.

    With a ``request_key`` a repeated call returns the agent it made first and no key (the
    key is not stored). Raises :class:`AgentCodeTakenError` if another agent has ``code``.
    """
    if not re.fullmatch(rules.AGENT_CODE, code):
        raise AgentFieldInvalidError("an agent code is 1 to 32 letters, digits, _ and -",
                                     field="code")
    if not (0 < len(name.strip()) <= 100 and 0 < len(location.strip()) <= 200):
        raise AgentFieldInvalidError("name (up to 100) and location (up to 200) are required",
                                     field="name")
    if request_key is not None:
        with ctx.engine.connect() as conn:
            old = conn.execute(select(agents).where(agents.c.request_key == request_key)).first()
        if old is not None:
            return _agent(old), None
    account = chart.open_account(ctx.ledger, f"agent_float:{code}", chart.Code.AGENT_FLOAT,
                                 owner_ref=f"agent:{code}")
    key = rules.new_agent_key()
    try:
        with ctx.engine.begin() as conn:
            agent_id = conn.execute(agents.insert().values(
                code=code, name=name, location=location, key_hash=rules.hash_agent_key(key),
                float_account_id=account.id, request_key=request_key,
                created_at=ctx.clock.now_us()).returning(agents.c.id)).scalar_one()
    except IntegrityError:
        raise AgentCodeTakenError(f"an agent with code {code!r} exists") from None
    return get_agent(ctx, agent_id), key


def get_agent(ctx: Context, agent_id: int) -> Agent:
    with ctx.engine.connect() as conn:
        row = conn.execute(select(agents).where(agents.c.id == agent_id)).first()
    if row is None:
        raise AgentNotFoundError(f"no agent {agent_id}")
    return _agent(row)


def list_agents(ctx: Context, *, after_id: int = 0, limit: int = 100) -> list[Agent]:
    with ctx.engine.connect() as conn:
        return [_agent(r) for r in conn.execute(
            select(agents).where(agents.c.id > after_id).order_by(agents.c.id).limit(limit))]


def float_account(ctx: Context, agent: Agent) -> Account:
    """The agent's float: ``balance`` is what it holds, ``available`` what it may spend."""
    return ctx.ledger.account(agent.float_account_id)


def top_up_float(ctx: Context, agent_id: int, amount_fen: int,
                 reference: str) -> AgentTransaction:
    """Credit the agent's float with cash it deposited at the operator's bank: custody
    reserve -> float, transfer ``agent_float:{agent}:{reference}``.

    Idempotent on the deposit ``reference``, per agent: the same reference and amount
    returns the first top-up; another amount raises :class:`AgentReferenceReusedError`.
    """
    _check(amount_fen, reference)
    agent = get_agent(ctx, agent_id)
    reserve = chart.system_account(ctx.ledger, chart.Code.CUSTODY_RESERVE)
    req = TransferRequest(
        id=f"agent_float:{agent.id}:{reference}", debit_account_id=reserve.id,
        credit_account_id=agent.float_account_id, amount=amount_fen,
        code=int(chart.TransferCode.AGENT_FLOAT), ref=f"agent {agent.code} deposit {reference}")
    return _post_agent_txn(ctx, agent, "float_topup", reference, req, None, None)


# -- agents ---------------------------------------------------------------------------------


def authenticate_agent(ctx: Context, key: str | None) -> Agent:
    """The agent whose API key this is; :class:`AgentKeyMissingError` or
    :class:`AgentKeyInvalidError` otherwise."""
    if not key:
        raise AgentKeyMissingError("send the agent's API key in X-Agent-Key")
    with ctx.engine.connect() as conn:
        row = conn.execute(select(agents)
                           .where(agents.c.key_hash == rules.hash_agent_key(key))).first()
    if row is None:
        raise AgentKeyInvalidError("the agent key is not valid")
    return _agent(row)


def cash_in(ctx: Context, agent: Agent, msisdn: str, amount_fen: int,
            reference: str) -> AgentTransaction:
    """Move ``amount_fen`` from the agent's float to the wallet of ``msisdn`` (the customer
    paid the agent in cash): transfer ``cash_in:{agent}:{reference}``.

    Idempotent on the agent's own ``reference``: a repeat with the same number and amount
    returns the first cash-in; with others, :class:`AgentReferenceReusedError`. Refusals:
    ``invalid_msisdn``, :class:`RecipientNotRegisteredError`,
    :class:`AgentFloatInsufficientError` (nothing beyond the float), and the wallet's own
    (``balance_cap_exceeded``, ``subscriber_closed``) from ``guard_inflow``.
    """
    _check(amount_fen, reference)
    number = normalise_msisdn(msisdn)
    old = _find_txn(ctx, agent.id, "cash_in", reference)
    if old is not None:
        return _same_or_refuse(old, amount_fen, number)
    subscriber = find_by_msisdn(ctx, number)
    if subscriber is None:
        raise RecipientNotRegisteredError(f"no wallet is registered for {number}")
    req = TransferRequest(
        id=f"cash_in:{agent.id}:{reference}", debit_account_id=agent.float_account_id,
        credit_account_id=subscriber.wallet_account_id, amount=amount_fen,
        code=int(chart.TransferCode.CASH_IN), ref=f"agent {agent.code} cash-in {reference}")
    return _post_agent_txn(
        ctx, agent, "cash_in", reference, req, subscriber.id, number,
        before=lambda conn: guard_inflow(conn, subscriber.id, amount_fen,
                                         settings=ctx.settings))


def list_transactions(ctx: Context, agent_id: int, *, before_id: int | None = None,
                      limit: int = 50) -> list[AgentTransaction]:
    """The agent's own cash-ins and float top-ups, newest first."""
    t = agent_transactions
    stmt = select(t).where(t.c.agent_id == agent_id).order_by(t.c.id.desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(t.c.id < before_id)
    with ctx.engine.connect() as conn:
        return [_txn(r) for r in conn.execute(stmt)]


# -- shared ---------------------------------------------------------------------------------


def _find_txn(ctx: Context, agent_id: int, kind: str, reference: str) -> AgentTransaction | None:
    t = agent_transactions
    with ctx.engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.agent_id == agent_id, t.c.kind == kind,
                                           t.c.reference == reference)).first()
    return None if row is None else _txn(row)


def _same_or_refuse(old: AgentTransaction, amount_fen: int,
                    msisdn: str | None) -> AgentTransaction:
    if old.amount_fen != amount_fen or old.msisdn != msisdn:
        raise AgentReferenceReusedError(
            f"reference {old.reference!r} was used for another {old.kind.replace('_', '-')}")
    return old


def _post_agent_txn(
    ctx: Context, agent: Agent, kind: str, reference: str, req: TransferRequest,
    subscriber_id: int | None, msisdn: str | None, *, before: Any = None,
) -> AgentTransaction:
    now = ctx.clock.now_us()

    def record(conn: Connection, _results: list[TransferResult]) -> None:
        conn.execute(agent_transactions.insert().values(
            agent_id=agent.id, kind=kind, reference=reference, subscriber_id=subscriber_id,
            msisdn=msisdn, amount_fen=req.amount, transfer_id=req.id, created_at=now))

    try:
        post_recorded(ctx.ledger, [req], before=before, record=record)
    except AlreadyAppliedError:
        pass  # a concurrent or earlier call with this reference got there first
    except le.TransferIdConflictError:
        raise AgentReferenceReusedError(
            f"reference {reference!r} was used for another {kind.replace('_', '-')}") from None
    except le.AccountOverdraftError as exc:
        if exc.detail.get("account_id") != agent.float_account_id:
            raise
        raise AgentFloatInsufficientError(
            "the agent's float does not cover this cash-in",
            available_fen=exc.detail.get("available_fen")) from None
    found = _find_txn(ctx, agent.id, kind, reference)
    assert found is not None, "the transfer and its record commit together"
    return _same_or_refuse(found, req.amount or 0, msisdn)
