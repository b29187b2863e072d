"""reconciliation statements, lines, items and suspense

Revision ID: 0015_reconciliation
Revises: 0014_partners
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_reconciliation"
down_revision = "0014_partners"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    # One imported statement file (docs/reconciliation.md); the same bytes import once.
    op.create_table(
        "recon_statements",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(10), nullable=False),  # bank | carrier | transit
        sa.Column("partner", sa.String(40), nullable=False),
        sa.Column("business_date", sa.String(10), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("filename", sa.String(300), nullable=False),
        sa.Column("encoding", sa.String(12), nullable=False),
        sa.Column("lines", sa.BigInteger, nullable=False),
        sa.Column("in_fen", sa.BigInteger, nullable=False),
        sa.Column("out_fen", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),  # imported | classified | posted
        sa.Column("summary_json", sa.Text),
        sa.Column("imported_by", sa.String(80), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("matched_at", sa.BigInteger),
    )
    # The statement's lines (the staging table, filled with COPY / executemany).
    op.create_table(
        "recon_lines",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("statement_id", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(10), nullable=False),
        sa.Column("line_no", sa.BigInteger, nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("day_no", sa.Integer, nullable=False),  # days since 1970-01-01
        sa.Column("direction", sa.String(3), nullable=False),  # in | out
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("memo", sa.String(200)),
        sa.Column("category", sa.String(16)),
        sa.Column("our_amount_fen", sa.BigInteger),
        # Matching sets category and our_amount_fen on every line once: with room left on
        # each page, PostgreSQL updates in place (HOT) instead of adding index entries.
        postgresql_with={"fillfactor": 50},
    )
    op.create_index("ix_recon_lines_statement_ref", "recon_lines",
                    ["statement_id", "reference"])
    op.create_index("ix_recon_lines_source_ref", "recon_lines", ["source", "reference"])
    # Our side of one statement's matching, materialised for the joins.
    op.create_table(
        "recon_ours",
        sa.Column("statement_id", sa.BigInteger, nullable=False),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("day_no", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("statement_id", "reference"),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Scratch rows, written and deleted within one matching transaction: no WAL needed
        # (after a crash PostgreSQL empties an unlogged table, which is all it ever holds).
        op.execute("ALTER TABLE recon_ours SET UNLOGGED")
    # A difference: parked in suspense until an operator resolves it.
    op.create_table(
        "recon_items",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("statement_id", sa.BigInteger, nullable=False),
        sa.Column("line_id", sa.BigInteger),
        sa.Column("source", sa.String(10), nullable=False),
        sa.Column("partner", sa.String(40), nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.Column("their_amount_fen", sa.BigInteger),
        sa.Column("our_amount_fen", sa.BigInteger),
        sa.Column("suspense_fen", sa.BigInteger, nullable=False),
        sa.Column("counter", sa.String(10), nullable=False),  # reserve | clearing | none
        sa.Column("state", sa.String(10), nullable=False),  # open | resolved
        sa.Column("resolution", sa.String(12)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("resolved_at", sa.BigInteger),
            )
    op.create_index("ix_recon_items_state", "recon_items", ["state", "id"])
    op.create_index("ix_recon_items_source_ref", "recon_items", ["source", "reference"])
    # Every resolution of an item, who proposed and who approved it.
    op.create_table(
        "recon_resolutions",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.BigInteger, nullable=False, unique=True),  # one each
        sa.Column("action", sa.String(12), nullable=False),
        sa.Column("target", sa.String(60)),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("transfer_id", sa.String(80)),
        sa.Column("proposed_by", sa.String(80), nullable=False),
        sa.Column("approved_by", sa.String(80)),
        sa.Column("approval_id", sa.BigInteger),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("recon_resolutions")
    op.drop_index("ix_recon_items_source_ref", table_name="recon_items")
    op.drop_index("ix_recon_items_state", table_name="recon_items")
    op.drop_table("recon_items")
    op.drop_table("recon_ours")
    op.drop_index("ix_recon_lines_source_ref", table_name="recon_lines")
    op.drop_index("ix_recon_lines_statement_ref", table_name="recon_lines")
    op.drop_table("recon_lines")
    op.drop_table("recon_statements")
