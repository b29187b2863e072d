"""Sending SMS. ``SmsGateway`` is the interface; ``RecordingSms`` the development one.

``RecordingSms`` writes every message to the ``sms_messages`` table instead of an SMSC, so
that `make run` users (``paycell sms list``) and tests can read what a subscriber would
have received. The SMPP implementation comes with the merchant-payments issue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import BigInteger, Column, Engine, Integer, MetaData, String, Table, Text, select

from paycell.clock import Clock

metadata = MetaData()
sms_messages = Table(
    "sms_messages", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("direction", String(3), nullable=False),
    Column("msisdn", String(20), nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(12), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)


@dataclass(frozen=True, slots=True)
class SmsMessage:
    id: int
    direction: str
    msisdn: str
    body: str
    status: str
    created_at: int


class SmsGateway(Protocol):
    def send(self, msisdn: str, body: str) -> None:
        """Queue a text to ``msisdn`` (E.164). Must not raise for delivery problems."""


class RecordingSms:
    """Records outgoing texts in the database; nothing leaves the machine."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def send(self, msisdn: str, body: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sms_messages.insert().values(
                direction="out", msisdn=msisdn, body=body, status="recorded",
                created_at=self.clock.now_us()))

    def messages(self, msisdn: str | None = None, limit: int = 50) -> list[SmsMessage]:
        """The newest messages first, optionally for one number."""
        stmt = select(sms_messages).order_by(sms_messages.c.id.desc()).limit(limit)
        if msisdn:
            stmt = stmt.where(sms_messages.c.msisdn == msisdn)
        with self.engine.connect() as conn:
            return [SmsMessage(r.id, r.direction, r.msisdn, r.body, r.status, r.created_at)
                    for r in conn.execute(stmt)]

    def last_to(self, msisdn: str) -> str | None:
        found = self.messages(msisdn, limit=1)
        return found[0].body if found else None
