"""Request parameters the API modules share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header

# Ids are BIGINT: larger ones cannot exist (and would upset PostgreSQL).
MAX_ID = 2**63 - 1

# Every state-changing POST takes one (paycell/api/idempotency.py).
KeyHeader = Annotated[str | None, Header(alias="Idempotency-Key",
                                         description="any unique string, e.g. a UUID")]
