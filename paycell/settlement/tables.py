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
