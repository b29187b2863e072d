"""Operators and approvals. Created only by migration ``0006_merchants``; this mirrors it for
queries. Times are integer microseconds since the Unix epoch (UTC)."""

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text, text

metadata = MetaData()
BIGID = BigInteger().with_variant(Integer, "sqlite")

operators = Table(
    "operators", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # admin | operator | auditor
    # HMAC-SHA256 of the API key (crypto.token_hash); NULL: cannot sign in with a key
    # (``root``, authenticated by the settings key, and the seeding operators).
    Column("key_hash", String(64), unique=True),
    Column("state", String(10), nullable=False),  # active | disabled
    Column("created_at", BigInteger, nullable=False),
    Column("disabled_at", BigInteger),
)

approvals = Table(
    "approvals", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("action", String(64), nullable=False),
    Column("subject", String(128), nullable=False),  # e.g. merchant:7
    Column("payload", Text, nullable=False),  # JSON
    Column("reason", String(500), nullable=False),
    # pending -> approving (the handler runs) -> approved | failed; pending -> rejected
    Column("state", String(10), nullable=False),
    Column("proposed_by", BigInteger, nullable=False),
    Column("proposed_by_name", String(64), nullable=False),
    Column("proposed_at", BigInteger, nullable=False),
    Column("decided_by", BigInteger),
    Column("decided_by_name", String(64)),
    Column("decided_at", BigInteger),
    Column("note", String(500)),
    Column("result", Text),  # JSON: the handler's answer, or the error that refused it
    Column("updated_at", BigInteger, nullable=False),
    # At most one open approval per (action, subject): proposing twice is refused by the index.
    Index("ux_approvals_open", "action", "subject", unique=True,
          postgresql_where=text("state IN ('pending', 'approving')"),
          sqlite_where=text("state IN ('pending', 'approving')")),
    Index("ix_approvals_state", "state", "id"),
)
