"""The subscribers' tables. Created only by migration ``0003_subscribers``.

Times are integer microseconds since the Unix epoch (UTC), like the ledger's.
"""

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text, text

metadata = MetaData()
BIGID = BigInteger().with_variant(Integer, "sqlite")

subscribers = Table(
    "subscribers", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("msisdn", String(20), nullable=False),
    Column("state", String(10), nullable=False),
    Column("tier", Integer, nullable=False, server_default="0"),
    Column("name", String(200)),
    Column("id_number_hash", String(64)),
    Column("id_number_last4", String(4)),
    Column("pin_hash", String(200), nullable=False),
    Column("pin_failures", Integer, nullable=False, server_default="0"),
    Column("pin_locked_until", BigInteger),
    Column("wallet_account_id", BigInteger, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("closed_at", BigInteger),
    Index("ux_subscribers_msisdn_open", "msisdn", unique=True,
          postgresql_where=text("state <> 'closed'"), sqlite_where=text("state <> 'closed'")),
)

sessions = Table(
    "subscriber_sessions", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("subscriber_id", BigInteger, nullable=False),
    Column("access_hash", String(64), nullable=False, unique=True),
    Column("refresh_hash", String(64), nullable=False, unique=True),
    Column("prev_refresh_hash", String(64)),
    Column("login_key", String(64), unique=True),
    Column("refresh_key", String(64)),
    Column("access_expires_at", BigInteger, nullable=False),
    Column("refresh_expires_at", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
    Column("revoked_reason", String(30)),
)

codes = Table(
    "subscriber_codes", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("subscriber_id", BigInteger, nullable=False),
    Column("purpose", String(20), nullable=False),
    Column("code_hash", String(200), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("expires_at", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("used_at", BigInteger),
)

usage = Table(
    "subscriber_usage", metadata,
    Column("subscriber_id", BigInteger, primary_key=True),
    Column("period", String(12), primary_key=True),
    Column("used_fen", BigInteger, nullable=False),
)

events = Table(
    "subscriber_events", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("subscriber_id", BigInteger, nullable=False),
    Column("kind", String(30), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("reason", Text),
    Column("created_at", BigInteger, nullable=False),
)
