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
    # Clearing reads a business day's transfers by time: BRIN on PostgreSQL (timestamps
    # follow the journal's physical order, so the index is a few pages and costs the hot
    # insert path almost nothing), a B-tree on SQLite.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE INDEX ix_ledger_transfers_timestamp ON ledger_transfers "
                   "USING brin (timestamp)")
    else:
        op.create_index("ix_ledger_transfers_timestamp", "ledger_transfers", ["timestamp"])


def downgrade() -> None:
    op.drop_index("ix_ledger_transfers_timestamp", table_name="ledger_transfers")
    op.drop_index("ix_settlement_items_party", table_name="settlement_items")
    op.drop_table("settlement_items")
