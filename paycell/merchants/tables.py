"""The merchants' tables. Created only by migration ``0006_merchants``; this mirrors it for
queries. Times are integer microseconds since the Unix epoch (UTC). Secrets the platform
must read back (API secrets, webhook secrets, the settlement bank account number) are
sealed with ``paycell.crypto.seal``."""

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
    text,
)

metadata = MetaData()
BIGID = BigInteger().with_variant(Integer, "sqlite")

merchants = Table(
    "merchants", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("code", String(16), unique=True),  # M100001..., set in the same transaction
    Column("name", String(100), nullable=False),  # trading name, shown to payers
    Column("company", String(200), nullable=False),  # registered company name
    Column("category", String(32), nullable=False),
    Column("state", String(12), nullable=False),
    Column("contact_name", String(100), nullable=False),
    Column("contact_phone", String(32), nullable=False),
    Column("contact_email", String(254), nullable=False),
    Column("bank_name", String(100), nullable=False),
    Column("bank_account_holder", String(200), nullable=False),
    Column("bank_account_sealed", Text, nullable=False),
    Column("bank_account_last4", String(4), nullable=False),
    Column("default_notify_url", String(500)),
    Column("payable_account_id", BigInteger, unique=True),
    Column("request_key", String(400), unique=True),  # operator + Idempotency-Key
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("activated_at", BigInteger),
    Index("ix_merchants_state", "state", "id"),
)

events = Table(
    "merchant_events", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("merchant_id", BIGID, ForeignKey("merchants.id"), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("actor", String(80), nullable=False),
    Column("reason", String(500)),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_merchant_events_merchant", "merchant_id", "id"),
)

stores = Table(
    "merchant_stores", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("merchant_id", BIGID, ForeignKey("merchants.id"), nullable=False),
    Column("code", String(32), nullable=False),
    Column("name", String(100), nullable=False),
    Column("address", String(200), nullable=False),
    Column("state", String(10), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("merchant_id", "code", name="uq_merchant_stores_code"),
)

credentials = Table(
    "merchant_credentials", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("merchant_id", BIGID, ForeignKey("merchants.id"), nullable=False),
    Column("key_id", String(40), nullable=False, unique=True),
    Column("kind", String(10), nullable=False),  # hmac | ed25519
    Column("secret_sealed", Text),
    Column("public_key", String(64)),  # hex, 32 bytes
    Column("label", String(64), nullable=False),
    Column("created_by", String(80), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),  # may be in the future: a scheduled revocation
    Index("ix_merchant_credentials_merchant", "merchant_id", "id"),
)

webhook_secrets = Table(
    "merchant_webhook_secrets", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("merchant_id", BIGID, ForeignKey("merchants.id"), nullable=False),
    Column("secret_sealed", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("retired_at", BigInteger),  # NULL: the current one (one per merchant)
    Index("ux_merchant_webhook_secrets_current", "merchant_id", unique=True,
          postgresql_where=text("retired_at IS NULL"), sqlite_where=text("retired_at IS NULL")),
    Index("ix_merchant_webhook_secrets_merchant", "merchant_id", "id"),
)

# Nonces of accepted signed requests, kept until their timestamp leaves the window: the
# primary key refuses a replay, in this process or any other.
nonces = Table(
    "merchant_nonces", metadata,
    Column("key_id", String(40), primary_key=True),
    Column("nonce", String(64), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_merchant_nonces_expires", "expires_at"),
)
