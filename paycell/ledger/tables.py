"""The ledger's tables. Created only by migrations; see ``paycell/migrations``.

Timestamps here are integer microseconds since the Unix epoch (UTC), like TigerBeetle's
integer timestamps: exact, comparable across both databases, and hashable without
formatting ambiguity.
"""

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()
BIGID = BigInteger().with_variant(Integer, "sqlite")

accounts = Table(
    "ledger_accounts",
    metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("ledger", String(3), nullable=False),
    Column("code", Integer, nullable=False),
    Column("owner_ref", String(200)),
    Column("flags", Integer, nullable=False, server_default="0"),
    Column("debits_pending", BigInteger, nullable=False, server_default="0"),
    Column("debits_posted", BigInteger, nullable=False, server_default="0"),
    Column("credits_pending", BigInteger, nullable=False, server_default="0"),
    Column("credits_posted", BigInteger, nullable=False, server_default="0"),
    Column("timestamp", BigInteger, nullable=False),
)

transfers = Table(
    "ledger_transfers",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("id", String(200), nullable=False, unique=True),
    Column("debit_account_id", BigInteger, nullable=False),
    Column("credit_account_id", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("ledger", String(3), nullable=False),
    Column("code", Integer, nullable=False),
    Column("flags", Integer, nullable=False),
    Column("pending_id", String(200)),
    Column("timeout", Integer, nullable=False),
    Column("ref", Text),
    Column("timestamp", BigInteger, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# Statements read an account's transfers in journal order (see the migration).
Index("ix_ledger_transfers_debit", transfers.c.debit_account_id, transfers.c.seq)
Index("ix_ledger_transfers_credit", transfers.c.credit_account_id, transfers.c.seq)
# Partial (0016): nearly every transfer has no pending_id; NULLs need no index entry.
Index("ix_ledger_transfers_pending_id", transfers.c.pending_id,
      postgresql_where=transfers.c.pending_id.isnot(None),
      sqlite_where=transfers.c.pending_id.isnot(None))

holds = Table(
    "ledger_holds",
    metadata,
    Column("transfer_id", String(200), primary_key=True),
    Column("debit_account_id", BigInteger, nullable=False),
    Column("credit_account_id", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("ledger", String(3), nullable=False),
    Column("status", String(10), nullable=False),
    Column("expires_at", BigInteger),
    Column("resolved_by", String(200)),
)

chain_head = Table(
    "ledger_chain_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)
