"""Operators' use cases: add one (its API key shown once), sign in with a key, list, disable.

API keys are 32 random bytes (prefix ``pco_``), stored only as ``crypto.token_hash``. The
settings key (``PAYCELL_OPERATOR_API_KEY``) stays valid and signs in as the operator
``root`` (role ``admin``), whose row is created the first time it is needed.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from paycell.clock import Clock
from paycell.context import Context
from paycell.crypto import token_hash
from paycell.errors import ConflictError, ForbiddenError, InvalidRequestError, NotFoundError
from paycell.operators.model import ACTING_ROLES, ROLES, ROOT, Operator
from paycell.operators.tables import operators

NAME = re.compile(r"[a-z][a-z0-9._-]{1,63}")
KEY_PREFIX = "pco_"


class OperatorNotFoundError(NotFoundError):
    code = "operator_not_found"


class OperatorNameTakenError(ConflictError):
    code = "operator_name_taken"


class OperatorInvalidError(InvalidRequestError):
    code = "operator_invalid"


class OperatorRoleForbiddenError(ForbiddenError):
    """The operator's role does not allow this (``role``, ``needed``)."""

    code = "operator_role_forbidden"


def _op(row: Any) -> Operator:
    return Operator(id=row.id, name=row.name, role=row.role)


def require_role(operator: Operator, *roles: str) -> None:
    """Refuse with :class:`OperatorRoleForbiddenError` unless ``operator`` has one of
    ``roles`` (default: a role that may act, i.e. not ``auditor``)."""
    allowed = frozenset(roles) if roles else ACTING_ROLES
    if operator.role not in allowed:
        raise OperatorRoleForbiddenError(
            f"operator {operator.name!r} ({operator.role}) may not do this",
            role=operator.role, needed=sorted(allowed))


def _check(name: str, role: str) -> None:
    if not NAME.fullmatch(name) or name == ROOT:
        raise OperatorInvalidError("an operator name is 2 to 64 lower-case letters, digits, "
                                   ". _ -, starting with a letter (and not 'root')",
                                   field="name")
    if role not in ROLES:
        raise OperatorInvalidError(f"the role is one of {', '.join(ROLES)}", field="role")


def create_operator(ctx: Context, name: str, role: str) -> tuple[Operator, str]:
    """Add an operator; return it and its API key, which is shown only here (the platform
    keeps its hash). Raises :class:`OperatorInvalidError`, :class:`OperatorNameTakenError`.
    Not idempotent by itself: the API makes it so with the Idempotency-Key."""
    _check(name, role)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    try:
        with ctx.engine.begin() as conn:
            oid = conn.execute(operators.insert().values(
                name=name, role=role, key_hash=token_hash(ctx.settings.secret_key, key),
                state="active", created_at=ctx.clock.now_us()).returning(operators.c.id)
            ).scalar_one()
    except IntegrityError:
        raise OperatorNameTakenError(f"an operator named {name!r} exists") from None
    return Operator(oid, name, role), key


def ensure_operator(engine: Engine, clock: Clock, name: str, role: str) -> Operator:
    """The operator called ``name``, created without an API key if there is none (``root``
    and the operators the seeding code acts as). Safe under concurrency: the unique name
    decides, never a select-then-insert race."""
    with engine.connect() as conn:
        row = conn.execute(select(operators).where(operators.c.name == name)).first()
    if row is None:
        try:
            with engine.begin() as conn:
                conn.execute(operators.insert().values(name=name, role=role, state="active",
                                                       created_at=clock.now_us()))
        except IntegrityError:
            pass  # created concurrently
        with engine.connect() as conn:
            row = conn.execute(select(operators).where(operators.c.name == name)).one()
    return _op(row)


def root_operator(ctx: Context) -> Operator:
    """``root`` (admin): who the settings' operator API key signs in as."""
    return ensure_operator(ctx.engine, ctx.clock, ROOT, "admin")


def authenticate_key(engine: Engine, secret_key: str, key: str) -> Operator | None:
    """The active operator whose API key this is, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(operators).where(
            operators.c.key_hash == token_hash(secret_key, key),
            operators.c.state == "active")).first()
    return None if row is None else _op(row)


def get_operator(ctx: Context, name: str) -> Operator:
    """The operator called ``name`` (any state); :class:`OperatorNotFoundError` if none."""
    with ctx.engine.connect() as conn:
        row = conn.execute(select(operators).where(operators.c.name == name)).first()
    if row is None:
        raise OperatorNotFoundError(f"no operator named {name!r}")
    return _op(row)


def list_operators(ctx: Context) -> list[dict[str, Any]]:
    """Every operator with its state and creation time, by id."""
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(operators).order_by(operators.c.id)).all()
    return [{"id": r.id, "name": r.name, "role": r.role, "state": r.state,
             "has_key": r.key_hash is not None, "created_at": r.created_at} for r in rows]


def disable_operator(ctx: Context, name: str) -> Operator:
    """Disable an operator: its key stops working at once. Idempotent. ``root`` cannot be
    disabled here (change the settings key instead): :class:`OperatorInvalidError`."""
    if name == ROOT:
        raise OperatorInvalidError("root signs in with the settings key; change that instead")
    op = get_operator(ctx, name)
    with ctx.engine.begin() as conn:
        conn.execute(update(operators).where(operators.c.id == op.id,
                                             operators.c.state == "active")
                     .values(state="disabled", disabled_at=ctx.clock.now_us()))
    return op
