"""reconciliation statements, lines, items and suspense

Revision ID: 0015_reconciliation
Revises: 0014_partners
Create Date: 2026-11-26
"""

import sqlalchemy as sa

revision = "0015_reconciliation"
down_revision = "0014_partners"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
