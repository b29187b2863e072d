"""merchant notifications (outbox) and delivery attempts

Revision ID: 0007_notifications
Revises: 0006_merchants
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_notifications"
down_revision = "0006_merchants"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("seq", BIGID, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(40), nullable=False, unique=True),
        sa.Column("merchant_id", sa.BigInteger, nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("auto_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.BigInteger),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("delivered_at", sa.BigInteger),
        sa.Column("claimed_until", sa.BigInteger),
        sa.Column("claim_token", sa.String(32)),
        sa.CheckConstraint("state IN ('pending', 'delivering', 'delivered', 'failed')",
                           name="ck_notifications_state"),
        sa.CheckConstraint("attempts >= 0 AND auto_attempts >= 0",
                           name="ck_notifications_attempts"),
    )
    op.create_index("ix_notifications_due", "notifications", ["state", "next_attempt_at"])
    op.create_index("ix_notifications_merchant", "notifications", ["merchant_id", "seq"])
    op.create_table(
        "notification_attempts",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("notification_id", sa.String(40), sa.ForeignKey("notifications.id"),
                  nullable=False),
        sa.Column("attempted_at", sa.BigInteger, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.String(32)),
        sa.Column("acknowledged", sa.Boolean, nullable=False),
        sa.Column("latency_ms", sa.Integer, nullable=False),
        sa.Column("response_snippet", sa.String(500)),
        sa.Column("manual", sa.Boolean, nullable=False),
        sa.Column("operator", sa.String(100)),
    )
    op.create_index("ix_notification_attempts_notification", "notification_attempts",
                    ["notification_id", "id"])


def downgrade() -> None:
    op.drop_table("notification_attempts")
    op.drop_table("notifications")
