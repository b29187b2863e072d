"""Tables of the cash-side funding flows: recharge vouchers, agent outlets, P2P transfers.

Created only by migration ``0005_cash``; this mirrors it for queries. Timestamps are integer
microseconds since the Unix epoch (UTC), like the ledger's.
"""

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()
BIGID = BigInteger().with_variant(Integer, "sqlite")

# -- recharge vouchers (充值卡) ------------------------------------------------------------
voucher_batches = Table(
    "voucher_batches", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("face_value_fen", BigInteger, nullable=False),
    Column("card_count", Integer, nullable=False),
    Column("expires_on", String(10), nullable=False),  # ISO date printed on the card
    Column("expires_at", BigInteger, nullable=False),  # first instant the cards are expired
    Column("state", String(10), nullable=False),  # active | voided
    Column("request_key", String(400), unique=True),  # caller + Idempotency-Key, if any
    Column("created_at", BigInteger, nullable=False),
    Column("voided_at", BigInteger),
)

vouchers = Table(
    "vouchers", metadata,
    Column("card_number", String(16), primary_key=True),
    Column("batch_id", BIGID, ForeignKey("voucher_batches.id"), nullable=False),
    Column("secret_hash", String(64), nullable=False),  # HMAC-SHA256, hex
    Column("state", String(10), nullable=False),  # issued | redeemed
    Column("redeemed_by", BigInteger),  # subscriber id
    Column("redeemed_at", BigInteger),
    Index("ix_vouchers_batch_state", "batch_id", "state"),
)

# One row per wallet that ever typed a wrong secret: the row redemptions lock, and the lock.
voucher_guards = Table(
    "voucher_guards", metadata,
    Column("subscriber_id", BigInteger, primary_key=True),
    Column("locked_until", BigInteger),
)

voucher_failures = Table(
    "voucher_failures", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("subscriber_id", BigInteger, nullable=False),
    Column("card_number", String(32), nullable=False),  # as typed (never the secret)
    Column("at", BigInteger, nullable=False),
    Index("ix_voucher_failures_subscriber_at", "subscriber_id", "at"),
)

# -- agent outlets (营业厅, third-party agents) --------------------------------------------
agents = Table(
    "agents", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("code", String(32), nullable=False, unique=True),
    Column("name", String(100), nullable=False),
    Column("location", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),  # SHA-256 of the API key
    Column("float_account_id", BigInteger, nullable=False),
    Column("request_key", String(400), unique=True),
    Column("created_at", BigInteger, nullable=False),
)

agent_transactions = Table(
    "agent_transactions", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("agent_id", BIGID, ForeignKey("agents.id"), nullable=False),
    Column("kind", String(12), nullable=False),  # cash_in | float_topup
    Column("reference", String(64), nullable=False),  # the agent's (or the bank slip's)
    Column("subscriber_id", BigInteger),
    Column("msisdn", String(20)),
    Column("amount_fen", BigInteger, nullable=False),
    Column("transfer_id", String(200), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("agent_id", "kind", "reference", name="uq_agent_transactions_reference"),
    Index("ix_agent_transactions_agent_id", "agent_id", "id"),
)

# -- P2P transfers --------------------------------------------------------------------------
p2p_transfers = Table(
    "p2p_transfers", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("ref", String(40), nullable=False, unique=True),  # names its ledger transfers
    Column("sender_id", BigInteger, nullable=False),
    Column("sender_msisdn", String(20), nullable=False),
    Column("recipient_msisdn", String(20), nullable=False),
    Column("recipient_id", BigInteger),  # set once the money reaches a wallet
    Column("amount_fen", BigInteger, nullable=False),
    Column("note", String(140)),
    Column("state", String(14), nullable=False),  # completed | pending_claim | claimed | returned
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger),  # a claimable hold's timeout
    Column("resolved_at", BigInteger),
    Index("ix_p2p_sender", "sender_id", "id"),
    Index("ix_p2p_recipient", "recipient_id", "id"),
    Index("ix_p2p_claimable", "state", "recipient_msisdn"),
)
