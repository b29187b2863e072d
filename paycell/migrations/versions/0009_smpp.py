"""SMS over SMPP: message ids, delivery receipts, inbound texts

Revision ID: 0009_smpp
Revises: 0008_payments
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op  # noqa: F401  (the placeholder uses no operation yet)

revision = "0009_smpp"
down_revision = "0008_payments"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
