"""the journal's pending_id index holds only posts and voids

Revision ID: 0016_partial_pending_index
Revises: 0015_reconciliation
Create Date: 2026-11-26

Nearly every transfer has no pending_id, and a B-tree stores NULLs too: one index entry
written per journal row for nothing. Lookups are always ``pending_id = <a hold's id>``,
which the partial index serves.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_partial_pending_index"
down_revision = "0015_reconciliation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_ledger_transfers_pending_id", table_name="ledger_transfers")
    op.create_index("ix_ledger_transfers_pending_id", "ledger_transfers", ["pending_id"],
                    postgresql_where=sa.text("pending_id IS NOT NULL"),
                    sqlite_where=sa.text("pending_id IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_ledger_transfers_pending_id", table_name="ledger_transfers")
    op.create_index("ix_ledger_transfers_pending_id", "ledger_transfers", ["pending_id"])
