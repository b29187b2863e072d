"""Response models for endpoints that answer whole table rows.

Some operator endpoints (settlement's clearings, payouts, holds) answer rows as they are
stored. ``row_model`` derives their pydantic model from the table itself, so the OpenAPI
schema names every field with its type and the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, create_model
from sqlalchemy import Table


def row_model(table: Table, name: str, doc: str, **extra: Any) -> type[BaseModel]:
    """A model with one field per column of ``table`` (``T | None`` where nullable), plus
    ``extra`` fields given as ``name=(type, default)``. Amounts are integer fen and times
    integer microseconds, as stored."""
    fields: dict[str, Any] = {}
    for col in table.columns:
        py: Any = col.type.python_type
        fields[col.name] = (py | None if col.nullable else py, ...)
    fields.update(extra)
    model: type[BaseModel] = create_model(name, __doc__=doc, **fields)
    return model
