"""commission rules, clearing, settlement items and payouts

Revision ID: 0013_settlement
Revises: 0012_onsite_ecash_ota
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_settlement"
down_revision = "0012_onsite_ecash_ota"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    # What is owed to a party and not yet paid out (paycell/settlement/items.py).
    op.create_table(
        "settlement_items",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("party_kind", sa.String(10), nullable=False),
        sa.Column("party_id", sa.BigInteger, nullable=False),
        sa.Column("account_id", sa.BigInteger, nullable=False),
        sa.Column("business_date", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("source_ref", sa.String(120), nullable=False, unique=True),
        sa.Column("payout_id", sa.BigInteger),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_settlement_items_party", "settlement_items",
                    ["party_kind", "party_id", "payout_id"])
    # Commission rules, versioned per merchant: the rule in force on a business date is the
    # one with the latest effective_from not after it (paycell/settlement/rules.py).
    op.create_table(
        "settlement_rules",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("merchant_id", sa.BigInteger, nullable=False),
        sa.Column("effective_from", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("proposed_by", sa.String(64), nullable=False),
        sa.Column("approved_by", sa.String(64), nullable=False),
        sa.Column("approval_id", sa.BigInteger, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("merchant_id", "effective_from", name="uq_settlement_rules_date"),
    )
    # Operator-entered deductions from a merchant's settlement of one business date.
    op.create_table(
        "settlement_deductions",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("merchant_id", sa.BigInteger, nullable=False),
        sa.Column("business_date", sa.String(10), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("proposed_by", sa.String(64), nullable=False),
        sa.Column("approved_by", sa.String(64), nullable=False),
        sa.Column("approval_id", sa.BigInteger, nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_settlement_deductions_date", "settlement_deductions",
                    ["business_date", "merchant_id"])
    # One row per cleared (business date, merchant): the day's figures.
    op.create_table(
        "settlement_clearings",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("business_date", sa.String(10), nullable=False),
        sa.Column("merchant_id", sa.BigInteger, nullable=False),
        sa.Column("rule_kind", sa.String(16), nullable=False),
        sa.Column("rule_id", sa.BigInteger),
        sa.Column("sales_count", sa.BigInteger, nullable=False),
        sa.Column("gross_fen", sa.BigInteger, nullable=False),
        sa.Column("refund_count", sa.BigInteger, nullable=False),
        sa.Column("refunds_fen", sa.BigInteger, nullable=False),
        sa.Column("commission_fen", sa.BigInteger, nullable=False),
        sa.Column("commission_returned_fen", sa.BigInteger, nullable=False),
        sa.Column("deductions_fen", sa.BigInteger, nullable=False),
        sa.Column("card_fee_fen", sa.BigInteger, nullable=False),
        sa.Column("net_fen", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("business_date", "merchant_id", name="uq_settlement_clearings"),
    )
    op.create_index("ix_settlement_clearings_merchant", "settlement_clearings",
                    ["merchant_id", "business_date"])
    # A cleared business date: totals and who ran it.
    op.create_table(
        "settlement_days",
        sa.Column("business_date", sa.String(10), primary_key=True),
        sa.Column("merchants", sa.BigInteger, nullable=False),
        sa.Column("blocked", sa.BigInteger, nullable=False),
        sa.Column("gross_fen", sa.BigInteger, nullable=False),
        sa.Column("refunds_fen", sa.BigInteger, nullable=False),
        sa.Column("commission_fen", sa.BigInteger, nullable=False),
        sa.Column("net_fen", sa.BigInteger, nullable=False),
        sa.Column("cleared_by", sa.String(64), nullable=False),
        sa.Column("cleared_at", sa.BigInteger, nullable=False),
    )
    # Payout batches (one per business date) and their payouts, one per party.
    op.create_table(
        "settlement_batches",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("business_date", sa.String(10), nullable=False, unique=True),
        sa.Column("bank", sa.String(20), nullable=False),
        sa.Column("payout_count", sa.BigInteger, nullable=False),
        sa.Column("total_fen", sa.BigInteger, nullable=False),
        sa.Column("file_name", sa.String(200), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("result_at", sa.BigInteger),
    )
    op.create_table(
        "settlement_payouts",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.BigInteger, nullable=False),
        sa.Column("business_date", sa.String(10), nullable=False),
        sa.Column("party_kind", sa.String(10), nullable=False),
        sa.Column("party_id", sa.BigInteger, nullable=False),
        sa.Column("account_id", sa.BigInteger, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reference", sa.String(40), nullable=False, unique=True),
        sa.Column("bank", sa.String(20), nullable=False),
        sa.Column("bank_name", sa.String(100), nullable=False),
        sa.Column("bank_account_last4", sa.String(4), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),  # sent | paid | returned
        sa.Column("returned_reason", sa.String(200)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("resolved_at", sa.BigInteger),
    )
    op.create_index("ix_settlement_payouts_batch", "settlement_payouts", ["batch_id"])
    op.create_index("ix_settlement_payouts_party", "settlement_payouts",
                    ["party_kind", "party_id"])
    # Payout holds: a returned payout stops the party's payouts until an operator clears it.
    op.create_table(
        "settlement_holds",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("party_kind", sa.String(10), nullable=False),
        sa.Column("party_id", sa.BigInteger, nullable=False),
        sa.Column("payout_id", sa.BigInteger, nullable=False, unique=True),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),  # open | cleared
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("cleared_by", sa.String(64)),
        sa.Column("cleared_note", sa.String(200)),
        sa.Column("cleared_at", sa.BigInteger),
    )
    op.create_index("ix_settlement_holds_party", "settlement_holds",
                    ["party_kind", "party_id", "state"])
    # Clearing reads a business day's transfers by time: BRIN on PostgreSQL (timestamps
    # follow the journal's physical order, so the index is a few pages and costs the hot
    # insert path almost nothing), a B-tree on SQLite.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE INDEX ix_ledger_transfers_timestamp ON ledger_transfers "
                   "USING brin (timestamp)")
    else:
        op.create_index("ix_ledger_transfers_timestamp", "ledger_transfers", ["timestamp"])


def downgrade() -> None:
    for name in ("settlement_holds", "settlement_payouts", "settlement_batches",
                 "settlement_days", "settlement_clearings", "settlement_deductions",
                 "settlement_rules"):
        op.drop_table(name)
    op.drop_index("ix_ledger_transfers_timestamp", table_name="ledger_transfers")
    op.drop_index("ix_settlement_items_party", table_name="settlement_items")
    op.drop_table("settlement_items")
