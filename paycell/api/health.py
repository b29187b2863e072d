"""``GET /health``: is the service up and can it reach its database? Public, no data."""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import SQLAlchemyError

from paycell.api.deps import get_engine
from paycell.api.errors import ServiceUnavailableError, problem_responses
from paycell.ledger.tables import chain_head

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


class DatabaseUnavailableError(ServiceUnavailableError):
    code = "database_unavailable"


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    database: Literal["sqlite", "postgresql"]
    journal_seq: int = Field(description="sequence number of the journal's last transfer")


def journal_seq(conn: Connection) -> int:
    """The chain head's sequence number: how many transfers the journal holds."""
    seq = conn.execute(select(chain_head.c.seq).where(chain_head.c.id == 1)).scalar_one_or_none()
    if seq is None:
        raise DatabaseUnavailableError("the ledger's chain head is missing: run migrations")
    return int(seq)


@router.get("/health", response_model=Health, responses=problem_responses(503),
            summary="Liveness and database check")
def health(engine: Engine = Depends(get_engine)) -> Health:
    """200 when the database answers ``SELECT 1`` and the journal's head can be read;
    503 ``database_unavailable`` otherwise. Reads only."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            seq = journal_seq(conn)
    except SQLAlchemyError as exc:
        log.warning("health check: database unavailable: %s", exc.__class__.__name__)
        raise DatabaseUnavailableError("the database does not answer") from exc
    if engine.dialect.name == "postgresql":
        return Health(database="postgresql", journal_seq=seq)
    return Health(database="sqlite", journal_seq=seq)
