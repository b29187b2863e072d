"""SMS over SMPP: message ids, delivery receipts, inbound texts

Revision ID: 0009_smpp
Revises: 0008_payments
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_smpp"
down_revision = "0008_payments"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.add_column("sms_messages", sa.Column("parts", sa.Integer))
    op.add_column("sms_messages", sa.Column("smsc_message_id", sa.String(64)))
    op.add_column("sms_messages", sa.Column("updated_at", sa.BigInteger))
    op.add_column("sms_messages", sa.Column("error", sa.String(200)))
    op.create_table(
        "sms_message_parts",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("message_id", BIGID,
                  sa.ForeignKey("sms_messages.id", name="fk_sms_message_parts_message",
                                ondelete="CASCADE"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("smsc_message_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("error", sa.String(200)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("message_id", "seq", name="uq_sms_message_parts_seq"),
        sa.CheckConstraint("status IN ('submitted', 'delivered', 'failed')",
                           name="ck_sms_message_parts_status"),
    )
    # Delivery receipts look parts up by the SMSC's id.
    op.create_index("ix_sms_message_parts_smsc_id", "sms_message_parts", ["smsc_message_id"])


def downgrade() -> None:
    op.drop_index("ix_sms_message_parts_smsc_id", table_name="sms_message_parts")
    op.drop_table("sms_message_parts")
    with op.batch_alter_table("sms_messages") as batch:
        for name in ("error", "updated_at", "smsc_message_id", "parts"):
            batch.drop_column(name)
