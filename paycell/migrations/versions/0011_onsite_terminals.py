"""POS terminals, sign-ons, online authorisations, batches

Revision ID: 0011_onsite_terminals
Revises: 0010_onsite_cards
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op  # noqa: F401  (the placeholder uses no operation yet)

revision = "0011_onsite_terminals"
down_revision = "0010_onsite_cards"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
