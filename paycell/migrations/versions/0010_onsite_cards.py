"""NFC SIM payment cards and the key store

Revision ID: 0010_onsite_cards
Revises: 0009_smpp
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_onsite_cards"
down_revision = "0009_smpp"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    # Card keys are never stored: the key store derives them from the issuer master key.
    op.create_table(
        "onsite_cards",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("subscriber_id", sa.BigInteger, nullable=False),
        sa.Column("wallet_account_id", sa.BigInteger, nullable=False),
        sa.Column("iccid", sa.String(20), nullable=False, unique=True),
        sa.Column("pan", sa.String(19), unique=True),
        sa.Column("psn", sa.String(2), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("last_atc", sa.Integer, nullable=False),
        sa.Column("ecash_account_id", sa.BigInteger, nullable=False),
        sa.Column("ecash_limit_fen", sa.BigInteger, nullable=False),
        sa.Column("hot_listed", sa.Boolean, nullable=False),
        sa.Column("block_reason", sa.String(40)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("activated_at", sa.BigInteger),
        sa.Column("blocked_at", sa.BigInteger),
        sa.Column("terminated_at", sa.BigInteger),
        sa.CheckConstraint("state IN ('issued', 'active', 'locked', 'lost', 'terminated')",
                           name="ck_onsite_cards_state"),
        sa.CheckConstraint("last_atc >= 0 AND last_atc <= 65535",
                           name="ck_onsite_cards_atc"),
        sa.CheckConstraint("ecash_limit_fen >= 0", name="ck_onsite_cards_ecash_limit"),
        sa.CheckConstraint("length(psn) = 2", name="ck_onsite_cards_psn"),
    )
    op.create_index("ix_onsite_cards_subscriber", "onsite_cards", ["subscriber_id"])
    op.create_table(
        "onsite_card_events",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("card_id", BIGID, sa.ForeignKey("onsite_cards.id"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("reason", sa.String(200)),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_onsite_card_events_card", "onsite_card_events", ["card_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_onsite_card_events_card", table_name="onsite_card_events")
    op.drop_table("onsite_card_events")
    op.drop_index("ix_onsite_cards_subscriber", table_name="onsite_cards")
    op.drop_table("onsite_cards")
