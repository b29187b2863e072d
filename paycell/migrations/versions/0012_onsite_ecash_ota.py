"""transit e-cash (loads, offline clearing, hot list) and OTA jobs

Revision ID: 0012_onsite_ecash_ota
Revises: 0011_onsite_terminals
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_onsite_ecash_ota"
down_revision = "0011_onsite_terminals"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    # -- transit e-cash ------------------------------------------------------------------
    op.create_table(
        "ecash_loads",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("card_id", sa.BigInteger, nullable=False),
        sa.Column("atc", sa.Integer, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("card_balance_fen", sa.BigInteger, nullable=False),
        sa.Column("new_balance_fen", sa.BigInteger, nullable=False),
        sa.Column("arqc", sa.String(16), nullable=False),
        sa.Column("transfer_id", sa.String(80), nullable=False),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("card_id", "atc", name="uq_ecash_loads_card_atc"),
        sa.CheckConstraint("amount_fen > 0", name="ck_ecash_loads_amount"),
    )
    op.create_table(
        "ecash_batches",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("terminal_id", sa.String(40), nullable=False),
        sa.Column("merchant_id", sa.BigInteger, nullable=False),
        sa.Column("batch_ref", sa.String(64)),
        sa.Column("records", sa.Integer, nullable=False),
        sa.Column("cleared", sa.Integer, nullable=False),
        sa.Column("duplicates", sa.Integer, nullable=False),
        sa.Column("rejected", sa.Integer, nullable=False),
        sa.Column("cleared_fen", sa.BigInteger, nullable=False),
        sa.Column("excess_fen", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_ecash_batches_terminal", "ecash_batches", ["terminal_id", "id"])
    # One row per offline transaction cleared: (PAN, PSN, ATC) clears once, whatever batch
    # carries it again.
    op.create_table(
        "ecash_records",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.BigInteger, nullable=False),
        sa.Column("terminal_id", sa.String(40), nullable=False),
        sa.Column("merchant_id", sa.BigInteger, nullable=False),
        sa.Column("card_id", sa.BigInteger, nullable=False),
        sa.Column("pan", sa.String(19), nullable=False),
        sa.Column("psn", sa.String(2), nullable=False),
        sa.Column("atc", sa.Integer, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("cleared_fen", sa.BigInteger, nullable=False),
        sa.Column("excess_fen", sa.BigInteger, nullable=False),
        sa.Column("txn_date", sa.String(6), nullable=False),
        sa.Column("tc", sa.String(16), nullable=False),
        sa.Column("transfer_id", sa.String(80)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("pan", "psn", "atc", name="uq_ecash_records_card_atc"),
        sa.CheckConstraint("cleared_fen >= 0 AND excess_fen >= 0 "
                           "AND cleared_fen + excess_fen = amount_fen",
                           name="ck_ecash_records_amounts"),
    )
    op.create_index("ix_ecash_records_card", "ecash_records", ["card_id", "id"])
    op.create_table(
        "ecash_rejects",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.BigInteger, nullable=False),
        sa.Column("pan", sa.String(19)),
        sa.Column("psn", sa.String(2)),
        sa.Column("atc", sa.Integer),
        sa.Column("amount_fen", sa.BigInteger),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_ecash_rejects_batch", "ecash_rejects", ["batch_id"])
    # -- OTA -----------------------------------------------------------------------------
    op.create_table(
        "ota_sims",
        sa.Column("iccid", sa.String(22), primary_key=True),
        sa.Column("msisdn", sa.String(20), nullable=False),
        sa.Column("counter", sa.BigInteger, nullable=False),
        sa.Column("applet_state", sa.String(12)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.CheckConstraint("counter >= 0 AND counter < 1099511627776",
                           name="ck_ota_sims_counter"),
    )
    op.create_table(
        "ota_jobs",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("iccid", sa.String(22), nullable=False),
        sa.Column("msisdn", sa.String(20), nullable=False),
        sa.Column("command", sa.String(12), nullable=False),
        sa.Column("card_id", sa.BigInteger),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("counter", sa.BigInteger),
        sa.Column("next_attempt_at", sa.BigInteger),
        sa.Column("last_error", sa.String(40)),
        sa.Column("request_key", sa.String(400), unique=True),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("sent_at", sa.BigInteger),
        sa.Column("confirmed_at", sa.BigInteger),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.CheckConstraint("state IN ('queued', 'sent', 'confirmed', 'failed')",
                           name="ck_ota_jobs_state"),
        sa.CheckConstraint("command IN ('install', 'personalise', 'lock', 'unlock', "
                           "'delete')", name="ck_ota_jobs_command"),
    )
    op.create_index("ix_ota_jobs_due", "ota_jobs", ["state", "next_attempt_at"])
    op.create_index("ix_ota_jobs_iccid", "ota_jobs", ["iccid"])


def downgrade() -> None:
    op.drop_index("ix_ota_jobs_iccid", table_name="ota_jobs")
    op.drop_index("ix_ota_jobs_due", table_name="ota_jobs")
    op.drop_table("ota_jobs")
    op.drop_table("ota_sims")
    op.drop_index("ix_ecash_rejects_batch", table_name="ecash_rejects")
    op.drop_table("ecash_rejects")
    op.drop_index("ix_ecash_records_card", table_name="ecash_records")
    op.drop_table("ecash_records")
    op.drop_index("ix_ecash_batches_terminal", table_name="ecash_batches")
    op.drop_table("ecash_batches")
    op.drop_table("ecash_loads")
