"""POS terminals, sign-ons, online authorisations, batches

Revision ID: 0011_onsite_terminals
Revises: 0010_onsite_cards
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_onsite_terminals"
down_revision = "0010_onsite_cards"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "onsite_terminals",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("terminal_id", sa.String(9), nullable=False, unique=True),
        sa.Column("merchant_id", sa.BigInteger(), sa.ForeignKey("merchants.id"),
                  nullable=False),
        sa.Column("store_id", sa.BigInteger(), sa.ForeignKey("merchant_stores.id"),
                  nullable=False),
        sa.Column("key_sealed", sa.Text(), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("deposit_fen", sa.BigInteger(), nullable=False),
        sa.Column("deposit_account_id", sa.BigInteger(), nullable=False),
        sa.Column("batch_no", sa.Integer(), nullable=False),
        sa.Column("batch_open", sa.Integer(), nullable=False),
        sa.Column("signed_on_at", sa.BigInteger()),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("state IN ('active', 'suspended', 'retired')",
                           name="ck_onsite_terminals_state"),
        sa.Index("ix_onsite_terminals_merchant", "merchant_id", "id"),
    )
    op.create_table(
        "onsite_terminal_batches",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("terminal_pk", sa.BigInteger(), sa.ForeignKey("onsite_terminals.id"),
                  nullable=False),
        sa.Column("batch_no", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("opened_at", sa.BigInteger(), nullable=False),
        sa.Column("closed_at", sa.BigInteger()),
        sa.Column("totals_json", sa.Text()),
        sa.Column("balanced", sa.Integer()),
        sa.UniqueConstraint("terminal_pk", "batch_no", name="uq_onsite_terminal_batches_no"),
    )
    op.create_table(
        "onsite_authorisations",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("terminal_pk", sa.BigInteger(), sa.ForeignKey("onsite_terminals.id"),
                  nullable=False),
        sa.Column("batch_no", sa.Integer(), nullable=False),
        sa.Column("stan", sa.String(6), nullable=False),
        sa.Column("msg_hash", sa.String(64)),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("response_code", sa.String(2)),
        sa.Column("reason", sa.String(40)),
        sa.Column("auth_code", sa.String(6)),
        sa.Column("arpc", sa.String(16)),
        sa.Column("card_id", sa.BigInteger()),
        sa.Column("pan_masked", sa.String(19)),
        sa.Column("atc", sa.Integer()),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("subscriber_id", sa.BigInteger()),
        sa.Column("merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("store_id", sa.BigInteger(), nullable=False),
        sa.Column("transfer_id", sa.String(80)),
        sa.Column("refunded_fen", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("late_original_at", sa.BigInteger()),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("reversed_at", sa.BigInteger()),
        sa.Column("voided_at", sa.BigInteger()),
        sa.CheckConstraint("refunded_fen >= 0 AND refunded_fen <= amount_fen",
                           name="ck_onsite_authorisations_refunded"),
        sa.UniqueConstraint("terminal_pk", "batch_no", "stan",
                            name="uq_onsite_authorisations_stan"),
        sa.Index("ix_onsite_authorisations_merchant", "merchant_id", "id"),
        sa.Index("ix_onsite_authorisations_card", "card_id", "id"),
    )
    op.create_table(
        "onsite_pos_refunds",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("authorisation_id", sa.BigInteger(),
                  sa.ForeignKey("onsite_authorisations.id"), nullable=False),
        sa.Column("terminal_pk", sa.BigInteger(), sa.ForeignKey("onsite_terminals.id"),
                  nullable=False),
        sa.Column("batch_no", sa.Integer(), nullable=False),
        sa.Column("stan", sa.String(6), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("transfer_id", sa.String(80), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("terminal_pk", "batch_no", "stan",
                            name="uq_onsite_pos_refunds_stan"),
        sa.Index("ix_onsite_pos_refunds_authorisation", "authorisation_id"),
    )
    op.create_table(
        "onsite_terminal_nonces",
        sa.Column("terminal_pk", sa.BigInteger(), primary_key=True),
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Index("ix_onsite_terminal_nonces_expires", "expires_at"),
    )


def downgrade() -> None:
    for name in ("onsite_terminal_nonces", "onsite_pos_refunds", "onsite_authorisations",
                 "onsite_terminal_batches", "onsite_terminals"):
        op.drop_table(name)
