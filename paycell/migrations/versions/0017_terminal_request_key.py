"""a terminal registration's request key, so that a retried registration finds its terminal

Revision ID: 0017_terminal_request_key
Revises: 0016_partial_pending_index
Create Date: 2026-11-26

The API's Idempotency-Key replays a registration's answer, but a registration interrupted
after its commit and run again (a stale claim taken over) made a second terminal and took a
second deposit. The key, stored with the terminal under a unique index, lets the rerun find
the first.
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_terminal_request_key"
down_revision = "0016_partial_pending_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("onsite_terminals") as batch:
        batch.add_column(sa.Column("request_key", sa.String(120)))
    op.create_index("ix_onsite_terminals_request_key", "onsite_terminals", ["request_key"],
                    unique=True)


def downgrade() -> None:
    op.drop_index("ix_onsite_terminals_request_key", table_name="onsite_terminals")
    with op.batch_alter_table("onsite_terminals") as batch:
        batch.drop_column("request_key")
