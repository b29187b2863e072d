"""The channel partners' tables. Created only by migration ``0014_partners``; this mirrors
it for queries. Times are integer microseconds since the Unix epoch (UTC); business dates
``YYYY-MM-DD`` (CST); months ``YYYY-MM``; amounts integer fen. The bank account number is
sealed with ``paycell.crypto.seal`` (settlement payouts read it back)."""

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()
BIGID = BigInteger().with_variant(Integer, "sqlite")
ATTACHED = text("detached_at IS NULL")

partners = Table(
    "partners", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("code", String(16), unique=True),  # P10001..., set in the same transaction
    Column("name", String(100), nullable=False),
    Column("state", String(10), nullable=False),  # pending | active | suspended | rejected
    Column("contact_phone", String(32), nullable=False),
    Column("bank_name", String(100), nullable=False),
    Column("bank_account_holder", String(200), nullable=False),
    Column("bank_account_sealed", Text, nullable=False),
    Column("bank_account_last4", String(4), nullable=False),
    Column("payable_account_id", BigInteger, unique=True),  # partner_payable:<id>
    Column("expansion_fee_fen", BigInteger, nullable=False),  # 20,000..200,000
    Column("expansion_days", Integer),  # NULL: settings.partner_expansion_days
    Column("expansion_min_txns", Integer),  # NULL: settings.partner_expansion_min_txns
    Column("created_by", String(80), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("activated_at", BigInteger),
    CheckConstraint("expansion_fee_fen BETWEEN 20000 AND 200000",
                    name="ck_partners_expansion_fee"),
)

events = Table(
    "partner_events", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("partner_id", BIGID, ForeignKey("partners.id"), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("actor", String(80), nullable=False),
    Column("reason", String(500)),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_partner_events_partner", "partner_id", "id"),
)

merchant_links = Table(
    "partner_merchants", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("partner_id", BIGID, ForeignKey("partners.id"), nullable=False),
    Column("merchant_id", BIGID, nullable=False),
    Column("attached_at", BigInteger, nullable=False),
    Column("attached_by", String(80), nullable=False),
    Column("detached_at", BigInteger),
    Column("detached_by", String(80)),
    Index("ux_partner_merchants_open", "merchant_id", unique=True,
          postgresql_where=ATTACHED, sqlite_where=ATTACHED),
    Index("ix_partner_merchants_partner", "partner_id", "attached_at"),
)

terminal_links = Table(
    "partner_terminals", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("partner_id", BIGID, ForeignKey("partners.id"), nullable=False),
    Column("terminal_pk", BIGID, nullable=False),  # onsite_terminals.id
    Column("attached_at", BigInteger, nullable=False),
    Column("attached_by", String(80), nullable=False),
    Column("detached_at", BigInteger),
    Column("detached_by", String(80)),
    Index("ux_partner_terminals_open", "terminal_pk", unique=True,
          postgresql_where=ATTACHED, sqlite_where=ATTACHED),
    Index("ix_partner_terminals_partner", "partner_id", "attached_at"),
)

# One row per fee made payable, written in the transaction of its ledger transfer.
fees = Table(
    "partner_fees", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("partner_id", BIGID, ForeignKey("partners.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # expansion_fee | maintenance
    Column("merchant_id", BigInteger),  # expansion_fee: the merchant
    Column("month", String(7)),  # maintenance: the month
    Column("terminals", Integer),  # maintenance: how many terminals counted
    Column("amount_fen", BigInteger, nullable=False),
    Column("business_date", String(10), nullable=False),
    Column("transfer_id", String(120), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_partner_fees_partner", "partner_id", "business_date"),
)
