"""The POS terminal tables. Created only by migration ``0011_onsite_terminals``; this mirrors
it for queries. Times are integer microseconds since the Unix epoch (UTC). The terminal key
is sealed with ``paycell.crypto.seal`` (it must be read back to check message MACs)."""

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()
BIGID = BigInteger().with_variant(Integer, "sqlite")

terminals = Table(
    "onsite_terminals", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("terminal_id", String(9), nullable=False, unique=True),  # T + 8 digits
    Column("merchant_id", BigInteger, nullable=False),
    Column("store_id", BigInteger, nullable=False),
    Column("key_sealed", Text, nullable=False),
    Column("state", String(10), nullable=False),  # active | suspended | retired
    Column("deposit_fen", BigInteger, nullable=False),
    Column("deposit_account_id", BigInteger, nullable=False),
    Column("batch_no", Integer, nullable=False),  # the current (or last) batch; 0: none yet
    Column("batch_open", Integer, nullable=False),  # 1 while batch_no is open
    Column("signed_on_at", BigInteger),
    Column("created_by", String(80), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("request_key", String(120)),  # the registration's, when it came with one
    Index("ix_onsite_terminals_merchant", "merchant_id", "id"),
    Index("ix_onsite_terminals_request_key", "request_key", unique=True),
)

batches = Table(
    "onsite_terminal_batches", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("terminal_pk", BigInteger, ForeignKey("onsite_terminals.id"), nullable=False),
    Column("batch_no", Integer, nullable=False),
    Column("state", String(8), nullable=False),  # open | closed
    Column("opened_at", BigInteger, nullable=False),
    Column("closed_at", BigInteger),
    Column("totals_json", Text),  # the platform's totals at close
    Column("balanced", Integer),  # at close: 1 if the terminal's totals matched, 0 if not
    UniqueConstraint("terminal_pk", "batch_no", name="uq_onsite_terminal_batches_no"),
)

# One row per authorisation message (approved or declined), and per reversal that came
# before its original (a tombstone: state reversed, no auth code), keyed like the terminal
# keys it: (terminal, batch, STAN).
authorisations = Table(
    "onsite_authorisations", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("terminal_pk", BigInteger, ForeignKey("onsite_terminals.id"), nullable=False),
    Column("batch_no", Integer, nullable=False),
    Column("stan", String(6), nullable=False),
    Column("msg_hash", String(64)),  # NULL for a tombstone
    Column("state", String(10), nullable=False),  # approved | declined | reversed | voided
    Column("response_code", String(2)),
    Column("reason", String(40)),
    Column("auth_code", String(6)),
    Column("arpc", String(16)),
    Column("card_id", BigInteger),
    Column("pan_masked", String(19)),
    Column("atc", Integer),
    Column("amount_fen", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("subscriber_id", BigInteger),
    Column("merchant_id", BigInteger, nullable=False),
    Column("store_id", BigInteger, nullable=False),
    Column("transfer_id", String(80)),  # the purchase transfer, if money moved
    Column("refunded_fen", BigInteger, nullable=False, server_default="0"),
    Column("late_original_at", BigInteger),  # a tombstone's original arrived (declined 94)
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("reversed_at", BigInteger),
    Column("voided_at", BigInteger),
    UniqueConstraint("terminal_pk", "batch_no", "stan", name="uq_onsite_authorisations_stan"),
    Index("ix_onsite_authorisations_merchant", "merchant_id", "id"),
    Index("ix_onsite_authorisations_card", "card_id", "id"),
)

pos_refunds = Table(
    "onsite_pos_refunds", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("authorisation_id", BigInteger, ForeignKey("onsite_authorisations.id"),
           nullable=False),
    Column("terminal_pk", BigInteger, ForeignKey("onsite_terminals.id"), nullable=False),
    Column("batch_no", Integer, nullable=False),
    Column("stan", String(6), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("transfer_id", String(80), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("terminal_pk", "batch_no", "stan", name="uq_onsite_pos_refunds_stan"),
    Index("ix_onsite_pos_refunds_authorisation", "authorisation_id"),
)

# Nonces of accepted terminal messages, kept until their timestamp leaves the window.
nonces = Table(
    "onsite_terminal_nonces", metadata,
    Column("terminal_pk", BigInteger, primary_key=True),
    Column("nonce", String(64), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_onsite_terminal_nonces_expires", "expires_at"),
)
