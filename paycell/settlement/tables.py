"""The settlement tables. Created only by migration ``0013_settlement``; this mirrors it for
queries. Times are integer microseconds since the Unix epoch (UTC); business dates are
``YYYY-MM-DD`` strings (CST, see ``calendar.py``); amounts integer fen."""

from sqlalchemy import (
    BigInteger,
    Column,
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

# What the platform owes a party (a merchant, a channel partner) and will pay out: one row
# per cleared business day of a merchant, per partner fee. Signed: a refund-heavy day is
# negative and is netted against the next ones. ``payout_id`` is set when a payout batch
# takes the item, and cleared again if the bank returns that payout.
items = Table(
    "settlement_items", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("party_kind", String(10), nullable=False),  # merchant | partner
    Column("party_id", BigInteger, nullable=False),
    Column("account_id", BigInteger, nullable=False),  # the party's payable ledger account
    Column("business_date", String(10), nullable=False),
    Column("kind", String(16), nullable=False),  # clearing | expansion_fee | maintenance
    Column("amount_fen", BigInteger, nullable=False),
    Column("source_ref", String(120), nullable=False, unique=True),
    Column("payout_id", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_settlement_items_party", "party_kind", "party_id", "payout_id"),
)

rules = Table(
    "settlement_rules", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("merchant_id", BigInteger, nullable=False),
    Column("effective_from", String(10), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("params", Text, nullable=False),  # JSON, see rules.py
    Column("proposed_by", String(64), nullable=False),
    Column("approved_by", String(64), nullable=False),
    Column("approval_id", BigInteger, unique=True),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("merchant_id", "effective_from", name="uq_settlement_rules_date"),
)

deductions = Table(
    "settlement_deductions", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("merchant_id", BigInteger, nullable=False),
    Column("business_date", String(10), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("reason", String(200), nullable=False),
    Column("proposed_by", String(64), nullable=False),
    Column("approved_by", String(64), nullable=False),
    Column("approval_id", BigInteger, nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
)

clearings = Table(
    "settlement_clearings", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("business_date", String(10), nullable=False),
    Column("merchant_id", BigInteger, nullable=False),
    Column("rule_kind", String(16), nullable=False),
    Column("rule_id", BigInteger),
    Column("sales_count", BigInteger, nullable=False),
    Column("gross_fen", BigInteger, nullable=False),
    Column("refund_count", BigInteger, nullable=False),
    Column("refunds_fen", BigInteger, nullable=False),
    Column("commission_fen", BigInteger, nullable=False),
    Column("commission_returned_fen", BigInteger, nullable=False),
    Column("deductions_fen", BigInteger, nullable=False),
    Column("card_fee_fen", BigInteger, nullable=False),
    Column("net_fen", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("business_date", "merchant_id", name="uq_settlement_clearings"),
)

days = Table(
    "settlement_days", metadata,
    Column("business_date", String(10), primary_key=True),
    Column("merchants", BigInteger, nullable=False),
    Column("blocked", BigInteger, nullable=False),
    Column("gross_fen", BigInteger, nullable=False),
    Column("refunds_fen", BigInteger, nullable=False),
    Column("commission_fen", BigInteger, nullable=False),
    Column("net_fen", BigInteger, nullable=False),
    Column("cleared_by", String(64), nullable=False),
    Column("cleared_at", BigInteger, nullable=False),
)

batches = Table(
    "settlement_batches", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("business_date", String(10), nullable=False, unique=True),
    Column("bank", String(20), nullable=False),
    Column("payout_count", BigInteger, nullable=False),
    Column("total_fen", BigInteger, nullable=False),
    Column("file_name", String(200), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("result_at", BigInteger),
)

# One payout per party and batch. ``reference`` is in the payout file and on the bank's
# statement (reconciliation matches it); state: sent | paid | returned.
payouts = Table(
    "settlement_payouts", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("batch_id", BigInteger, nullable=False),
    Column("business_date", String(10), nullable=False),
    Column("party_kind", String(10), nullable=False),
    Column("party_id", BigInteger, nullable=False),
    Column("account_id", BigInteger, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reference", String(40), nullable=False, unique=True),
    Column("bank", String(20), nullable=False),
    Column("bank_name", String(100), nullable=False),
    Column("bank_account_last4", String(4), nullable=False),
    Column("state", String(10), nullable=False),
    Column("returned_reason", String(200)),
    Column("created_at", BigInteger, nullable=False),
    Column("resolved_at", BigInteger),
)

holds = Table(
    "settlement_holds", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("party_kind", String(10), nullable=False),
    Column("party_id", BigInteger, nullable=False),
    Column("payout_id", BigInteger, nullable=False, unique=True),
    Column("reason", String(200), nullable=False),
    Column("state", String(8), nullable=False),  # open | cleared
    Column("created_at", BigInteger, nullable=False),
    Column("cleared_by", String(64)),
    Column("cleared_note", String(200)),
    Column("cleared_at", BigInteger),
)
