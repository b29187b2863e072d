"""operators, merchants, stores, API credentials, request nonces

Revision ID: 0006_merchants
Revises: 0005_cash
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op  # noqa: F401  (the placeholder uses no operation yet)

revision = "0006_merchants"
down_revision = "0005_cash"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
