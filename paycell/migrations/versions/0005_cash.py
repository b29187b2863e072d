"""cash: recharge vouchers, agent outlets, P2P transfers

Revision ID: 0005_cash
Revises: 0004_funding
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_cash"
down_revision = "0004_funding"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "voucher_batches",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("face_value_fen", sa.BigInteger, nullable=False),
        sa.Column("card_count", sa.Integer, nullable=False),
        sa.Column("expires_on", sa.String(10), nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("request_key", sa.String(400), unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("voided_at", sa.BigInteger),
        sa.CheckConstraint("face_value_fen > 0", name="ck_voucher_batches_face_positive"),
        sa.CheckConstraint("card_count > 0", name="ck_voucher_batches_count_positive"),
        sa.CheckConstraint("state IN ('active', 'voided')", name="ck_voucher_batches_state"),
    )
    op.create_table(
        "vouchers",
        sa.Column("card_number", sa.String(16), primary_key=True),
        sa.Column("batch_id", BIGID, sa.ForeignKey("voucher_batches.id"), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("redeemed_by", sa.BigInteger),
        sa.Column("redeemed_at", sa.BigInteger),
        sa.CheckConstraint("state IN ('issued', 'redeemed')", name="ck_vouchers_state"),
        sa.CheckConstraint("(state = 'redeemed') = (redeemed_by IS NOT NULL)",
                           name="ck_vouchers_redeemed_by"),
    )
    op.create_index("ix_vouchers_batch_state", "vouchers", ["batch_id", "state"])
    op.create_table(
        "voucher_guards",
        sa.Column("subscriber_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("locked_until", sa.BigInteger),
    )
    op.create_table(
        "voucher_failures",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("subscriber_id", sa.BigInteger, nullable=False),
        sa.Column("card_number", sa.String(32), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_voucher_failures_subscriber_at", "voucher_failures",
                    ["subscriber_id", "at"])
    op.create_table(
        "agents",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("code", sa.String(32), nullable=False, unique=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("location", sa.String(200), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("float_account_id", sa.BigInteger, nullable=False),
        sa.Column("request_key", sa.String(400), unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "agent_transactions",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("agent_id", BIGID, sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column("subscriber_id", sa.BigInteger),
        sa.Column("msisdn", sa.String(20)),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("transfer_id", sa.String(200), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("agent_id", "kind", "reference",
                            name="uq_agent_transactions_reference"),
        sa.CheckConstraint("kind IN ('cash_in', 'float_topup')",
                           name="ck_agent_transactions_kind"),
        sa.CheckConstraint("amount_fen > 0", name="ck_agent_transactions_amount_positive"),
    )
    op.create_index("ix_agent_transactions_agent_id", "agent_transactions", ["agent_id", "id"])
    op.create_table(
        "p2p_transfers",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("ref", sa.String(40), nullable=False, unique=True),
        sa.Column("sender_id", sa.BigInteger, nullable=False),
        sa.Column("sender_msisdn", sa.String(20), nullable=False),
        sa.Column("recipient_msisdn", sa.String(20), nullable=False),
        sa.Column("recipient_id", sa.BigInteger),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("note", sa.String(140)),
        sa.Column("state", sa.String(14), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger),
        sa.Column("resolved_at", sa.BigInteger),
        sa.CheckConstraint("amount_fen > 0", name="ck_p2p_amount_positive"),
        sa.CheckConstraint(
            "state IN ('completed', 'pending_claim', 'claimed', 'returned')",
            name="ck_p2p_state"),
    )
    op.create_index("ix_p2p_sender", "p2p_transfers", ["sender_id", "id"])
    op.create_index("ix_p2p_recipient", "p2p_transfers", ["recipient_id", "id"])
    op.create_index("ix_p2p_claimable", "p2p_transfers", ["state", "recipient_msisdn"])


def downgrade() -> None:
    for table in ("p2p_transfers", "agent_transactions", "agents", "voucher_failures",
                  "voucher_guards", "vouchers", "voucher_batches"):
        op.drop_table(table)
