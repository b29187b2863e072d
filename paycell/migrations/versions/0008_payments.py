"""payment orders, refunds, confirmations, escrow disputes

Revision ID: 0008_payments
Revises: 0007_notifications
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op  # noqa: F401  (the placeholder uses no operation yet)

revision = "0008_payments"
down_revision = "0007_notifications"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
