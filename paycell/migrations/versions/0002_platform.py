"""platform plumbing: HTTP idempotency keys, recorded SMS

Revision ID: 0002_platform
Revises: 0001_ledger
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_platform"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("caller", sa.String(100), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("response", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("caller", "key", name="pk_idempotency_keys"),
        sa.CheckConstraint("state IN ('started', 'done')", name="ck_idempotency_state"),
    )
    op.create_table(
        "sms_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("msisdn", sa.String(20), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.CheckConstraint("direction IN ('out', 'in')", name="ck_sms_direction"),
    )
    op.create_index("ix_sms_messages_msisdn", "sms_messages", ["msisdn", "id"])


def downgrade() -> None:
    op.drop_table("sms_messages")
    op.drop_table("idempotency_keys")
