"""operators, merchants, stores, API credentials, request nonces

Revision ID: 0006_merchants
Revises: 0005_cash
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_merchants"
down_revision = "0005_cash"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
OPEN = sa.text("state IN ('pending', 'approving')")


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), unique=True),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("disabled_at", sa.BigInteger),
        sa.CheckConstraint("role IN ('admin', 'operator', 'auditor')", name="ck_operators_role"),
        sa.CheckConstraint("state IN ('active', 'disabled')", name="ck_operators_state"),
    )
    op.create_table(
        "approvals",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("proposed_by", sa.BigInteger, nullable=False),
        sa.Column("proposed_by_name", sa.String(64), nullable=False),
        sa.Column("proposed_at", sa.BigInteger, nullable=False),
        sa.Column("decided_by", sa.BigInteger),
        sa.Column("decided_by_name", sa.String(64)),
        sa.Column("decided_at", sa.BigInteger),
        sa.Column("note", sa.String(500)),
        sa.Column("result", sa.Text),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.CheckConstraint(
            "state IN ('pending', 'approving', 'approved', 'rejected', 'failed')",
            name="ck_approvals_state"),
    )
    op.create_index("ux_approvals_open", "approvals", ["action", "subject"], unique=True,
                    postgresql_where=OPEN, sqlite_where=OPEN)
    op.create_index("ix_approvals_state", "approvals", ["state", "id"])
    op.create_table(
        "merchants",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("code", sa.String(16), unique=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("company", sa.String(200), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("contact_name", sa.String(100), nullable=False),
        sa.Column("contact_phone", sa.String(32), nullable=False),
        sa.Column("contact_email", sa.String(254), nullable=False),
        sa.Column("bank_name", sa.String(100), nullable=False),
        sa.Column("bank_account_holder", sa.String(200), nullable=False),
        sa.Column("bank_account_sealed", sa.Text, nullable=False),
        sa.Column("bank_account_last4", sa.String(4), nullable=False),
        sa.Column("default_notify_url", sa.String(500)),
        sa.Column("payable_account_id", sa.BigInteger, unique=True),
        sa.Column("request_key", sa.String(400), unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("activated_at", sa.BigInteger),
        sa.CheckConstraint(
            "state IN ('applied', 'in_review', 'active', 'suspended', 'terminated', "
            "'rejected')", name="ck_merchants_state"),
        sa.CheckConstraint("state NOT IN ('active', 'suspended') OR payable_account_id "
                           "IS NOT NULL", name="ck_merchants_payable_when_active"),
    )
    op.create_index("ix_merchants_state", "merchants", ["state", "id"])
    op.create_table(
        "merchant_events",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("merchant_id", BIGID, sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("reason", sa.String(500)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_merchant_events_merchant", "merchant_events", ["merchant_id", "id"])
    op.create_table(
        "merchant_stores",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("merchant_id", BIGID, sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("address", sa.String(200), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("merchant_id", "code", name="uq_merchant_stores_code"),
        sa.CheckConstraint("state IN ('open', 'closed')", name="ck_merchant_stores_state"),
    )
    op.create_table(
        "merchant_credentials",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("merchant_id", BIGID, sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False, unique=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("secret_sealed", sa.Text),
        sa.Column("public_key", sa.String(64)),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger),
        sa.CheckConstraint("kind IN ('hmac', 'ed25519')", name="ck_merchant_credentials_kind"),
        sa.CheckConstraint("(kind = 'hmac') = (secret_sealed IS NOT NULL)",
                           name="ck_merchant_credentials_secret"),
        sa.CheckConstraint("(kind = 'ed25519') = (public_key IS NOT NULL)",
                           name="ck_merchant_credentials_public_key"),
    )
    op.create_index("ix_merchant_credentials_merchant", "merchant_credentials",
                    ["merchant_id", "id"])
    op.create_table(
        "merchant_webhook_secrets",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("merchant_id", BIGID, sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("secret_sealed", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("retired_at", sa.BigInteger),
    )
    current = sa.text("retired_at IS NULL")
    op.create_index("ux_merchant_webhook_secrets_current", "merchant_webhook_secrets",
                    ["merchant_id"], unique=True, postgresql_where=current,
                    sqlite_where=current)
    op.create_index("ix_merchant_webhook_secrets_merchant", "merchant_webhook_secrets",
                    ["merchant_id", "id"])
    op.create_table(
        "merchant_nonces",
        sa.Column("key_id", sa.String(40), primary_key=True),
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_merchant_nonces_expires", "merchant_nonces", ["expires_at"])


def downgrade() -> None:
    for table in ("merchant_nonces", "merchant_webhook_secrets", "merchant_credentials",
                  "merchant_stores", "merchant_events", "merchants", "approvals",
                  "operators"):
        op.drop_table(table)
