"""merchant notifications (outbox) and delivery attempts

Revision ID: 0007_notifications
Revises: 0006_merchants
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op  # noqa: F401  (the placeholder uses no operation yet)

revision = "0007_notifications"
down_revision = "0006_merchants"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
