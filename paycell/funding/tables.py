"""The tables of cards, top-ups and withdrawals. Created only by migration ``0004_funding``.

Times are integer microseconds since the Unix epoch (UTC), like the ledger's. Ids are
strings (``card_…``, ``tu_…``, ``wd_…``) derived from the caller's Idempotency-Key, so a
retried request finds the record its first attempt made.
"""

from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Index, MetaData, String, Table, false, text

metadata = MetaData()


def _outcome_columns() -> list[Column[Any]]:
    return [
        Column("state", String(10), nullable=False),  # pending | confirmed | failed
        Column("reason", String(60)),
        Column("partner_ref", String(100)),
        Column("created_at", BigInteger, nullable=False),
        Column("updated_at", BigInteger, nullable=False),
        Column("resolved_at", BigInteger),
        Column("next_check_at", BigInteger),
    ]


cards = Table(
    "bank_cards", metadata,
    Column("id", String(32), primary_key=True),
    Column("subscriber_id", BigInteger, nullable=False),
    Column("state", String(10), nullable=False),  # verifying | active | removed | failed
    Column("bank", String(20)),
    Column("bank_name", String(100)),
    Column("last4", String(4), nullable=False),
    Column("token", String(500)),
    Column("is_default", Boolean, nullable=False, server_default=false()),
    Column("reason", String(60)),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("verified_at", BigInteger),
    Column("removed_at", BigInteger),
    Index("ux_bank_cards_default", "subscriber_id", unique=True,
          postgresql_where=text("is_default"), sqlite_where=text("is_default")),
)

topups = Table(
    "topups", metadata,
    Column("id", String(32), primary_key=True),
    Column("subscriber_id", BigInteger, nullable=False),
    Column("source", String(12), nullable=False),  # card | phone_bill
    Column("card_id", String(32)),
    Column("msisdn", String(20)),
    Column("partner", String(20), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("held_in_suspense", Boolean, nullable=False, server_default=false()),
    *_outcome_columns(),
)

withdrawals = Table(
    "withdrawals", metadata,
    Column("id", String(32), primary_key=True),
    Column("subscriber_id", BigInteger, nullable=False),
    Column("kind", String(12), nullable=False),  # withdrawal | close_payout
    Column("card_id", String(32), nullable=False),
    Column("bank", String(20), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("fee_fen", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    *_outcome_columns(),
)

phone_bill_usage = Table(
    "phone_bill_usage", metadata,
    Column("subscriber_id", BigInteger, primary_key=True),
    Column("month", String(8), primary_key=True),
    Column("used_fen", BigInteger, nullable=False),
)
