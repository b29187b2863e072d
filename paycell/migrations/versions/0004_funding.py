"""funding: bank cards, top-ups (card, phone bill), withdrawals, phone-bill usage

Revision ID: 0004_funding
Revises: 0003_subscribers
Create Date: 2026-11-26
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004_funding"
down_revision = "0003_subscribers"
branch_labels = None
depends_on = None

DEFAULT = sa.text("is_default")
PENDING = sa.text("state = 'pending'")


def _outcome_columns() -> list[sa.Column[Any]]:
    """What a top-up and a withdrawal share: the answer from outside and its timing."""
    return [
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("reason", sa.String(60)),
        sa.Column("partner_ref", sa.String(100)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("resolved_at", sa.BigInteger),
        # While pending: when the status-query job next asks the partner.
        sa.Column("next_check_at", sa.BigInteger),
    ]


def upgrade() -> None:
    op.create_table(
        "bank_cards",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("subscriber_id", sa.BigInteger, sa.ForeignKey("subscribers.id"),
                  nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("bank", sa.String(20)),
        sa.Column("bank_name", sa.String(100)),
        sa.Column("last4", sa.String(4), nullable=False),
        # The bank's token for the card: the only handle on it we keep (never the number).
        sa.Column("token", sa.String(500)),
        sa.Column("is_default", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("reason", sa.String(60)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("verified_at", sa.BigInteger),
        sa.Column("removed_at", sa.BigInteger),
        sa.CheckConstraint("state IN ('verifying', 'active', 'removed', 'failed')",
                           name="ck_bank_cards_state"),
        sa.CheckConstraint("NOT is_default OR state = 'active'", name="ck_bank_cards_default"),
    )
    op.create_index("ix_bank_cards_subscriber", "bank_cards", ["subscriber_id", "created_at"])
    # One default card per subscriber.
    op.create_index("ux_bank_cards_default", "bank_cards", ["subscriber_id"], unique=True,
                    postgresql_where=DEFAULT, sqlite_where=DEFAULT)

    op.create_table(
        "topups",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("subscriber_id", sa.BigInteger, sa.ForeignKey("subscribers.id"),
                  nullable=False),
        sa.Column("source", sa.String(12), nullable=False),
        sa.Column("card_id", sa.String(32), sa.ForeignKey("bank_cards.id")),
        sa.Column("msisdn", sa.String(20)),
        # The bank's or carrier's short code: names the clearing/receivable account.
        sa.Column("partner", sa.String(20), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        # The partner took the money but the wallet could not receive it (cap, closed):
        # it waits in the suspense account for a refund.
        sa.Column("held_in_suspense", sa.Boolean, nullable=False, server_default=sa.false()),
        *_outcome_columns(),
        sa.CheckConstraint("source IN ('card', 'phone_bill')", name="ck_topups_source"),
        sa.CheckConstraint("state IN ('pending', 'confirmed', 'failed')",
                           name="ck_topups_state"),
        sa.CheckConstraint("amount_fen > 0", name="ck_topups_amount_positive"),
    )
    op.create_index("ix_topups_subscriber", "topups", ["subscriber_id", "created_at", "id"])
    op.create_index("ix_topups_pending", "topups", ["next_check_at"],
                    postgresql_where=PENDING, sqlite_where=PENDING)

    op.create_table(
        "withdrawals",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("subscriber_id", sa.BigInteger, sa.ForeignKey("subscribers.id"),
                  nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("card_id", sa.String(32), sa.ForeignKey("bank_cards.id"), nullable=False),
        sa.Column("bank", sa.String(20), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("fee_fen", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        *_outcome_columns(),
        sa.CheckConstraint("kind IN ('withdrawal', 'close_payout')", name="ck_withdrawals_kind"),
        sa.CheckConstraint("state IN ('pending', 'confirmed', 'failed')",
                           name="ck_withdrawals_state"),
        sa.CheckConstraint("amount_fen > 0", name="ck_withdrawals_amount_positive"),
        sa.CheckConstraint("fee_fen >= 0", name="ck_withdrawals_fee"),
    )
    op.create_index("ix_withdrawals_subscriber", "withdrawals",
                    ["subscriber_id", "created_at", "id"])
    op.create_index("ix_withdrawals_pending", "withdrawals", ["next_check_at"],
                    postgresql_where=PENDING, sqlite_where=PENDING)

    op.create_table(
        "phone_bill_usage",
        sa.Column("subscriber_id", sa.BigInteger, primary_key=True),
        sa.Column("month", sa.String(8), primary_key=True),  # "m2026-01", China time
        sa.Column("used_fen", sa.BigInteger, nullable=False),
        sa.CheckConstraint("used_fen >= 0", name="ck_phone_bill_usage_used"),
    )


def downgrade() -> None:
    op.drop_table("phone_bill_usage")
    op.drop_table("withdrawals")
    op.drop_table("topups")
    op.drop_table("bank_cards")
