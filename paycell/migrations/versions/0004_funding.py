"""funding: bank cards, top-ups, withdrawals

Revision ID: 0004_funding
Revises: 0003_subscribers
Create Date: 2026-11-26
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0004_funding"
down_revision = "0003_subscribers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
