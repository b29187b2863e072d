"""payment orders, refunds, confirmations, escrow disputes

Revision ID: 0008_payments
Revises: 0007_notifications
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_payments"
down_revision = "0007_notifications"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "payment_orders",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("trade_no", sa.String(32), nullable=False, unique=True),
        sa.Column("merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("store_id", sa.BigInteger()),
        sa.Column("out_trade_no", sa.String(64), nullable=False),
        sa.Column("request_json", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("payer_subscriber_id", sa.BigInteger(), nullable=False),
        sa.Column("payer_msisdn", sa.String(20), nullable=False),
        sa.Column("notify_url", sa.String(512)),
        sa.Column("return_url", sa.String(512)),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("refunded_fen", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("paid_via", sa.String(12)),
        sa.Column("funding_ref", sa.String(40)),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("paid_at", sa.BigInteger()),
        sa.Column("release_at", sa.BigInteger()),
        sa.Column("released_at", sa.BigInteger()),
        sa.Column("closed_at", sa.BigInteger()),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("merchant_id", "out_trade_no", name="uq_payment_orders_out_trade_no"),
        sa.Index("ix_payment_orders_payer_state", "payer_subscriber_id", "state"),
        sa.Index("ix_payment_orders_state_expires", "state", "expires_at"),
        sa.Index("ix_payment_orders_state_release", "state", "release_at"),
    )
    op.create_table(
        "payment_events",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.BigInteger(), nullable=False, index=True),
        sa.Column("from_state", sa.String(20)),
        sa.Column("to_state", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("note", sa.String(200)),
        sa.Column("at", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "payment_refunds",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("refund_no", sa.String(32), nullable=False, unique=True),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("out_request_no", sa.String(64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(200)),
        sa.Column("source", sa.String(10), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("order_id", "out_request_no", name="uq_payment_refunds_request"),
    )
    op.create_table(
        "sms_confirmations",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("msisdn", sa.String(20), nullable=False),
        sa.Column("subscriber_id", sa.BigInteger(), nullable=False),
        sa.Column("purpose", sa.String(8), nullable=False),
        sa.Column("order_id", sa.BigInteger()),
        sa.Column("target", sa.String(32)),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("result_ref", sa.String(64)),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Index("ix_sms_confirmations_open", "msisdn", "state"),
    )
    op.create_table(
        "payment_disputes",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.BigInteger(), nullable=False, unique=True),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("outcome", sa.String(10)),
        sa.Column("buyer_fen", sa.BigInteger()),
        sa.Column("merchant_fen", sa.BigInteger()),
        sa.Column("decided_by", sa.String(64)),
        sa.Column("approved_by", sa.String(64)),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("resolved_at", sa.BigInteger()),
    )


def downgrade() -> None:
    for table in ("payment_disputes", "sms_confirmations", "payment_refunds",
                  "payment_events", "payment_orders"):
        op.drop_table(table)
