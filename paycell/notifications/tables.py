"""Tables of merchant notifications: the outbox and its attempt log.

Created only by migration ``0007_notifications``; this mirrors it for queries. Times are
integer microseconds since the Unix epoch (UTC).

A row is claimed for one delivery by setting ``claim_token`` and ``claimed_until`` (a lease
on ``ctx.clock``): whoever holds an unexpired claim is the only one delivering it. A worker
that dies mid-delivery leaves a claim that simply expires.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()
BIGID = BigInteger().with_variant(Integer, "sqlite")

notifications = Table(
    "notifications", metadata,
    Column("seq", BIGID, primary_key=True, autoincrement=True),  # list order and cursors
    Column("id", String(40), nullable=False, unique=True),  # ntf_..., stable, public
    Column("merchant_id", BigInteger, nullable=False),
    Column("event", String(64), nullable=False),
    Column("payload", Text, nullable=False),  # the event's data, JSON
    Column("url", String(2048), nullable=False),
    Column("state", String(12), nullable=False),  # pending|delivering|delivered|failed
    Column("attempts", Integer, nullable=False, default=0),  # all, manual ones included
    Column("auto_attempts", Integer, nullable=False, default=0),  # position in the schedule
    Column("next_attempt_at", BigInteger),  # None once delivered or given up
    Column("created_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger),
    Column("claimed_until", BigInteger),
    Column("claim_token", String(32)),
)
Index("ix_notifications_due", notifications.c.state, notifications.c.next_attempt_at)
Index("ix_notifications_merchant", notifications.c.merchant_id, notifications.c.seq)

notification_attempts = Table(
    "notification_attempts", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("notification_id", String(40), ForeignKey("notifications.id"), nullable=False),
    Column("attempted_at", BigInteger, nullable=False),
    Column("status_code", Integer),  # None when no HTTP answer came
    Column("error", String(32)),  # None when acknowledged; else why not (see delivery.py)
    Column("acknowledged", Boolean, nullable=False),
    Column("latency_ms", Integer, nullable=False),
    Column("response_snippet", String(500)),
    Column("manual", Boolean, nullable=False),
    Column("operator", String(100)),  # who re-sent it by hand
)
Index("ix_notification_attempts_notification", notification_attempts.c.notification_id,
      notification_attempts.c.id)
