"""subscribers: wallets' owners, sessions, one-time codes, outflow usage, audit events

Revision ID: 0003_subscribers
Revises: 0002_platform
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_subscribers"
down_revision = "0002_platform"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
OPEN = sa.text("state <> 'closed'")


def upgrade() -> None:
    op.create_table(
        "subscribers",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("msisdn", sa.String(20), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("tier", sa.Integer, nullable=False, server_default="0"),
        sa.Column("name", sa.String(200)),
        sa.Column("id_number_hash", sa.String(64)),
        sa.Column("id_number_last4", sa.String(4)),
        sa.Column("pin_hash", sa.String(200), nullable=False),
        sa.Column("pin_failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("pin_locked_until", sa.BigInteger),
        # Set once the ledger account exists (a second step: see service.open_account).
        sa.Column("wallet_account_id", sa.BigInteger, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("closed_at", sa.BigInteger),
        sa.CheckConstraint("state IN ('active', 'frozen', 'closed')",
                           name="ck_subscribers_state"),
        sa.CheckConstraint("tier >= 0", name="ck_subscribers_tier"),
        sa.CheckConstraint("pin_failures >= 0", name="ck_subscribers_pin_failures"),
    )
    # Number recycling: one open subscriber per MSISDN, any number of closed ones.
    op.create_index("ux_subscribers_msisdn_open", "subscribers", ["msisdn"], unique=True,
                    postgresql_where=OPEN, sqlite_where=OPEN)
    op.create_index("ix_subscribers_msisdn", "subscribers", ["msisdn", "id"])

    op.create_table(
        "subscriber_sessions",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("subscriber_id", sa.BigInteger, nullable=False),
        sa.Column("access_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("refresh_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prev_refresh_hash", sa.String(64)),
        sa.Column("login_key", sa.String(64), unique=True),
        sa.Column("refresh_key", sa.String(64)),
        sa.Column("access_expires_at", sa.BigInteger, nullable=False),
        sa.Column("refresh_expires_at", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger),
        sa.Column("revoked_reason", sa.String(30)),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"],
                                name="fk_sessions_subscriber"),
    )
    op.create_index("ix_subscriber_sessions_subscriber", "subscriber_sessions",
                    ["subscriber_id", "revoked_at"])
    op.create_index("ix_subscriber_sessions_prev_refresh", "subscriber_sessions",
                    ["prev_refresh_hash"])

    op.create_table(
        "subscriber_codes",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("subscriber_id", sa.BigInteger, nullable=False),
        sa.Column("purpose", sa.String(20), nullable=False),
        sa.Column("code_hash", sa.String(200), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("used_at", sa.BigInteger),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"],
                                name="fk_codes_subscriber"),
    )
    op.create_index("ix_subscriber_codes_subscriber", "subscriber_codes",
                    ["subscriber_id", "purpose", "id"])

    op.create_table(
        "subscriber_usage",
        sa.Column("subscriber_id", sa.BigInteger, nullable=False),
        sa.Column("period", sa.String(12), nullable=False),
        sa.Column("used_fen", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("subscriber_id", "period", name="pk_subscriber_usage"),
        sa.CheckConstraint("used_fen >= 0", name="ck_subscriber_usage_non_negative"),
    )

    op.create_table(
        "subscriber_events",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("subscriber_id", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_subscriber_events_subscriber", "subscriber_events",
                    ["subscriber_id", "id"])


def downgrade() -> None:
    op.drop_table("subscriber_events")
    op.drop_table("subscriber_usage")
    op.drop_table("subscriber_codes")
    op.drop_table("subscriber_sessions")
    op.drop_index("ix_subscribers_msisdn", "subscribers")
    op.drop_index("ux_subscribers_msisdn_open", "subscribers")
    op.drop_table("subscribers")
