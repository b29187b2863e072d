"""channel partners and their fees

Revision ID: 0014_partners
Revises: 0013_settlement
Create Date: 2026-11-26
"""

import sqlalchemy as sa

revision = "0014_partners"
down_revision = "0013_settlement"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
