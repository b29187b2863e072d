"""NFC SIM payment cards and the key store

Revision ID: 0010_onsite_cards
Revises: 0009_smpp
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op  # noqa: F401  (the placeholder uses no operation yet)

revision = "0010_onsite_cards"
down_revision = "0009_smpp"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
