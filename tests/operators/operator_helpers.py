"""Fixtures for operator tests: the shared app fixtures of ``cash_helpers`` (the test's
database on both backends, a ManualClock, workers off, an audit after each test) and
operators made through the service."""

from __future__ import annotations

from cash_helpers import (  # type: ignore[import-not-found]
    API_KEY,
    OPERATOR,
    client,
    clock,
    ctx,
    idem,
    settings,
)

from paycell.context import Context
from paycell.operators.model import Operator
from paycell.operators.service import create_operator

ROOT = OPERATOR
__all__ = ["API_KEY", "ROOT", "client", "clock", "ctx", "idem", "settings"]


def operator(ctx: Context, name: str, role: str = "operator") -> tuple[Operator, dict[str, str]]:
    """A new operator and the headers that sign in as it."""
    op, key = create_operator(ctx, name, role)
    return op, {"X-API-Key": key}
