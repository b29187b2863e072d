"""ledger: accounts, transfers (hash-chained journal), holds, chain head

Revision ID: 0001_ledger
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_ledger"
down_revision = None
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "ledger_accounts",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("ledger", sa.String(3), nullable=False),
        sa.Column("code", sa.Integer, nullable=False),
        sa.Column("owner_ref", sa.String(200)),
        sa.Column("flags", sa.Integer, nullable=False, server_default="0"),
        sa.Column("debits_pending", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("debits_posted", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("credits_pending", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("credits_posted", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.CheckConstraint(
            "debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0"
            " AND credits_posted >= 0",
            name="ck_accounts_counters_non_negative",
        ),
        # The balance rules, in the database as well as in Python (flag bits 1 and 2).
        sa.CheckConstraint(
            "(flags & 1) = 0 OR debits_pending + debits_posted <= credits_posted",
            name="ck_accounts_debits_within_credits",
        ),
        sa.CheckConstraint(
            "(flags & 2) = 0 OR credits_pending + credits_posted <= debits_posted",
            name="ck_accounts_credits_within_debits",
        ),
    )
    op.create_index("ix_ledger_accounts_owner_ref", "ledger_accounts", ["owner_ref"])
    op.create_table(
        "ledger_transfers",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(200), nullable=False, unique=True),
        sa.Column("debit_account_id", sa.BigInteger, nullable=False),
        sa.Column("credit_account_id", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("ledger", sa.String(3), nullable=False),
        sa.Column("code", sa.Integer, nullable=False),
        sa.Column("flags", sa.Integer, nullable=False),
        sa.Column("pending_id", sa.String(200)),
        sa.Column("timeout", sa.Integer, nullable=False),
        sa.Column("ref", sa.Text),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.CheckConstraint("amount > 0", name="ck_transfers_amount_positive"),
        sa.CheckConstraint(
            "debit_account_id <> credit_account_id", name="ck_transfers_distinct_accounts"
        ),
        sa.CheckConstraint("timeout >= 0", name="ck_transfers_timeout_non_negative"),
    )
    op.create_index("ix_ledger_transfers_debit", "ledger_transfers", ["debit_account_id", "seq"])
    op.create_index("ix_ledger_transfers_credit", "ledger_transfers", ["credit_account_id", "seq"])
    op.create_index("ix_ledger_transfers_pending_id", "ledger_transfers", ["pending_id"])
    op.create_table(
        "ledger_holds",
        sa.Column("transfer_id", sa.String(200), primary_key=True),
        sa.Column("debit_account_id", sa.BigInteger, nullable=False),
        sa.Column("credit_account_id", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("ledger", sa.String(3), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("expires_at", sa.BigInteger),
        sa.Column("resolved_by", sa.String(200)),
        sa.CheckConstraint(
            "status IN ('pending', 'posted', 'voided', 'expired')", name="ck_holds_status"
        ),
    )
    op.create_index("ix_ledger_holds_status_expiry", "ledger_holds", ["status", "expires_at"])
    op.create_table(
        "ledger_chain_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.execute(f"INSERT INTO ledger_chain_head (id, seq, hash) VALUES (1, 0, '{GENESIS}')")
    _append_only_journal()


def _append_only_journal() -> None:
    """Refuse UPDATE and DELETE on the journal at the database level."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION ledger_journal_append_only() RETURNS trigger AS $$
            BEGIN
              RAISE EXCEPTION 'ledger_transfers is append-only';
            END $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER ledger_transfers_append_only BEFORE UPDATE OR DELETE"
            " ON ledger_transfers FOR EACH ROW EXECUTE FUNCTION ledger_journal_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER ledger_transfers_no_{action.lower()} BEFORE {action}"
                " ON ledger_transfers BEGIN"
                " SELECT RAISE(ABORT, 'ledger_transfers is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_transfers_append_only ON ledger_transfers")
        op.execute("DROP FUNCTION IF EXISTS ledger_journal_append_only()")
    op.drop_table("ledger_chain_head")
    op.drop_table("ledger_holds")
    op.drop_table("ledger_transfers")
    op.drop_table("ledger_accounts")
