"""channel partners and their fees

Revision ID: 0014_partners
Revises: 0013_settlement
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_partners"
down_revision = "0013_settlement"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
ATTACHED = sa.text("detached_at IS NULL")


def upgrade() -> None:
    # Channel partners (docs/partners.md). Settlement payouts (paycell/settlement) read
    # the bank columns and payable_account_id with plain SQL: keep their names.
    op.create_table(
        "partners",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("code", sa.String(16), unique=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("contact_phone", sa.String(32), nullable=False),
        sa.Column("bank_name", sa.String(100), nullable=False),
        sa.Column("bank_account_holder", sa.String(200), nullable=False),
        sa.Column("bank_account_sealed", sa.Text, nullable=False),
        sa.Column("bank_account_last4", sa.String(4), nullable=False),
        sa.Column("payable_account_id", sa.BigInteger, unique=True),
        sa.Column("expansion_fee_fen", sa.BigInteger, nullable=False),
        # A partner-specific expansion condition (NULL: the settings' days / sales).
        sa.Column("expansion_days", sa.Integer),
        sa.Column("expansion_min_txns", sa.Integer),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("activated_at", sa.BigInteger),
        sa.CheckConstraint("state IN ('pending', 'active', 'suspended', 'rejected')",
                           name="ck_partners_state"),
        sa.CheckConstraint("expansion_fee_fen BETWEEN 20000 AND 200000",
                           name="ck_partners_expansion_fee"),
        sa.CheckConstraint("expansion_days IS NULL OR expansion_days BETWEEN 0 AND 3650",
                           name="ck_partners_expansion_days"),
        sa.CheckConstraint("expansion_min_txns IS NULL OR expansion_min_txns BETWEEN 1 AND "
                           "1000000", name="ck_partners_expansion_min_txns"),
        sa.CheckConstraint("state <> 'active' OR payable_account_id IS NOT NULL",
                           name="ck_partners_payable_when_active"),
    )
    op.create_table(
        "partner_events",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("partner_id", BIGID, sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("reason", sa.String(500)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_partner_events_partner", "partner_events", ["partner_id", "id"])
    # Attachments keep their history: detaching sets detached_at; at most one open
    # attachment per merchant (per terminal), enforced by a partial unique index.
    op.create_table(
        "partner_merchants",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("partner_id", BIGID, sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("merchant_id", BIGID, sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("attached_at", sa.BigInteger, nullable=False),
        sa.Column("attached_by", sa.String(80), nullable=False),
        sa.Column("detached_at", sa.BigInteger),
        sa.Column("detached_by", sa.String(80)),
    )
    op.create_index("ux_partner_merchants_open", "partner_merchants", ["merchant_id"],
                    unique=True, postgresql_where=ATTACHED, sqlite_where=ATTACHED)
    op.create_index("ix_partner_merchants_partner", "partner_merchants",
                    ["partner_id", "attached_at"])
    op.create_table(
        "partner_terminals",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("partner_id", BIGID, sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("terminal_pk", BIGID, sa.ForeignKey("onsite_terminals.id"), nullable=False),
        sa.Column("attached_at", sa.BigInteger, nullable=False),
        sa.Column("attached_by", sa.String(80), nullable=False),
        sa.Column("detached_at", sa.BigInteger),
        sa.Column("detached_by", sa.String(80)),
    )
    op.create_index("ux_partner_terminals_open", "partner_terminals", ["terminal_pk"],
                    unique=True, postgresql_where=ATTACHED, sqlite_where=ATTACHED)
    op.create_index("ix_partner_terminals_partner", "partner_terminals",
                    ["partner_id", "attached_at"])
    # One row per fee made payable; transfer_id is the ledger transfer's id, derived from
    # the business key (partner-expansion:<merchant>, partner-maintenance:<partner>:<month>),
    # so a fee exists at most once.
    op.create_table(
        "partner_fees",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("partner_id", BIGID, sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("merchant_id", sa.BigInteger),
        sa.Column("month", sa.String(7)),
        sa.Column("terminals", sa.Integer),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("business_date", sa.String(10), nullable=False),
        sa.Column("transfer_id", sa.String(120), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.CheckConstraint("kind IN ('expansion_fee', 'maintenance')",
                           name="ck_partner_fees_kind"),
        sa.CheckConstraint("amount_fen > 0", name="ck_partner_fees_amount"),
    )
    op.create_index("ix_partner_fees_partner", "partner_fees", ["partner_id", "business_date"])


def downgrade() -> None:
    op.drop_index("ix_partner_fees_partner", table_name="partner_fees")
    op.drop_table("partner_fees")
    op.drop_index("ix_partner_terminals_partner", table_name="partner_terminals")
    op.drop_index("ux_partner_terminals_open", table_name="partner_terminals")
    op.drop_table("partner_terminals")
    op.drop_index("ix_partner_merchants_partner", table_name="partner_merchants")
    op.drop_index("ux_partner_merchants_open", table_name="partner_merchants")
    op.drop_table("partner_merchants")
    op.drop_index("ix_partner_events_partner", table_name="partner_events")
    op.drop_table("partner_events")
    op.drop_table("partners")
