"""transit e-cash (loads, offline clearing, hot list) and OTA jobs

Revision ID: 0012_onsite_ecash_ota
Revises: 0011_onsite_terminals
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op  # noqa: F401  (the placeholder uses no operation yet)

revision = "0012_onsite_ecash_ota"
down_revision = "0011_onsite_terminals"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
