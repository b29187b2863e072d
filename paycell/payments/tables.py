"""Tables of payment orders. Created only by migration ``0008_payments``; this mirrors it.

Times are integer microseconds since the Unix epoch (UTC), amounts integer fen.
"""

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()
BIGID = BigInteger().with_variant(Integer, "sqlite")

payment_orders = Table(
    "payment_orders", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("trade_no", String(32), nullable=False, unique=True),  # the platform's order number
    Column("merchant_id", BigInteger, nullable=False),
    Column("store_id", BigInteger),
    Column("out_trade_no", String(64), nullable=False),  # the merchant's own, unique per merchant
    Column("request_json", Text, nullable=False),  # the create request, to compare retries
    Column("kind", String(8), nullable=False),  # direct | escrow
    Column("amount_fen", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("subject", String(128), nullable=False),
    Column("payer_subscriber_id", BigInteger, nullable=False),
    Column("payer_msisdn", String(20), nullable=False),
    Column("notify_url", String(512)),
    Column("return_url", String(512)),
    Column("state", String(20), nullable=False),
    Column("refunded_fen", BigInteger, nullable=False, server_default="0"),
    Column("paid_via", String(12)),  # wallet | card | phone_bill | sms
    Column("funding_ref", String(40)),  # a top-up paying for it (card, phone bill)
    Column("expires_at", BigInteger, nullable=False),
    Column("paid_at", BigInteger),
    Column("release_at", BigInteger),  # escrow: auto-release from then on
    Column("released_at", BigInteger),
    Column("closed_at", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("merchant_id", "out_trade_no", name="uq_payment_orders_out_trade_no"),
    Index("ix_payment_orders_payer_state", "payer_subscriber_id", "state"),
    Index("ix_payment_orders_state_expires", "state", "expires_at"),
    Index("ix_payment_orders_state_release", "state", "release_at"),
)

# Every state change of an order, oldest first: who did what, when.
payment_events = Table(
    "payment_events", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("order_id", BigInteger, nullable=False, index=True),
    Column("from_state", String(20)),
    Column("to_state", String(20), nullable=False),
    # merchant:<id> | subscriber:<id> | operator:<name> | system
    Column("actor", String(64), nullable=False),
    Column("note", String(200)),
    Column("at", BigInteger, nullable=False),
)

payment_refunds = Table(
    "payment_refunds", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("refund_no", String(32), nullable=False, unique=True),
    Column("order_id", BigInteger, nullable=False),
    Column("out_request_no", String(64), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("reason", String(200)),
    Column("source", String(10), nullable=False),  # merchant | dispute
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("order_id", "out_request_no", name="uq_payment_refunds_request"),
)

# Codes texted for confirmation (an order, or an SMS PAY / TRF command). Hashed, bound to
# what they confirm and its amount, short-lived, a few tries.
sms_confirmations = Table(
    "sms_confirmations", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("msisdn", String(20), nullable=False),
    Column("subscriber_id", BigInteger, nullable=False),
    Column("purpose", String(8), nullable=False),  # order | pay | trf
    Column("order_id", BigInteger),
    Column("target", String(32)),  # pay: merchant code; trf: recipient MSISDN
    Column("amount_fen", BigInteger, nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("state", String(8), nullable=False),  # open | used | dead
    Column("result_ref", String(64)),  # what the confirmation produced (trade_no, p2p ref)
    Column("expires_at", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_sms_confirmations_open", "msisdn", "state"),
)

payment_disputes = Table(
    "payment_disputes", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("order_id", BigInteger, nullable=False, unique=True),  # one dispute per order
    Column("reason", String(500), nullable=False),
    Column("state", String(10), nullable=False),  # open | resolved
    Column("outcome", String(10)),  # refund | release | split
    Column("buyer_fen", BigInteger),
    Column("merchant_fen", BigInteger),
    Column("decided_by", String(64)),
    Column("approved_by", String(64)),
    Column("created_at", BigInteger, nullable=False),
    Column("resolved_at", BigInteger),
)
