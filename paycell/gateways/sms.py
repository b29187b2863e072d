"""Sending SMS. ``SmsGateway`` is the interface; ``RecordingSms`` the development one,
``SmppSms`` (``smpp.py``) the real one, over SMPP 3.4 to an SMSC. docs/sms.md.

``RecordingSms`` writes every message to the ``sms_messages`` table instead of an SMSC, so
that `make run` users (``paycell sms list``) and tests can read what a subscriber would
have received. ``SmppSms`` records its texts in the same table (status queued, submitted,
delivered or failed) with their parts in ``sms_message_parts``; texts received from
subscribers are recorded there too (direction ``in``). ``build_sms`` picks the backend
from ``settings.sms_backend``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
)

from paycell.bulk import insert_many
from paycell.clock import Clock

if TYPE_CHECKING:
    from paycell.config import Settings
    from paycell.ledger.store import Ledger

T = TypeVar("T")

metadata = MetaData()
sms_messages = Table(
    "sms_messages", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("direction", String(3), nullable=False),
    Column("msisdn", String(20), nullable=False),
    Column("body", Text, nullable=False),
    # out: recorded (development) | queued | submitted | delivered | failed; in: received
    Column("status", String(12), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("parts", Integer),  # SMPP: how many submit_sm the text takes
    Column("smsc_message_id", String(64)),  # SMPP: the SMSC's id of the (first) part
    Column("updated_at", BigInteger),
    Column("error", String(200)),
)
# One row per submit_sm the SMSC accepted: delivery receipts name these ids.
sms_message_parts = Table(
    "sms_message_parts", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("message_id", BigInteger().with_variant(Integer, "sqlite"),
           ForeignKey("sms_messages.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("smsc_message_id", String(64), nullable=False),
    Column("status", String(12), nullable=False),  # submitted | delivered | failed
    Column("error", String(200)),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("message_id", "seq", name="uq_sms_message_parts_seq"),
)


@dataclass(frozen=True, slots=True)
class SmsMessage:
    id: int
    direction: str
    msisdn: str
    body: str
    status: str
    created_at: int
    smsc_message_id: str | None = None
    error: str | None = None
    updated_at: int | None = None


class SmsGateway(Protocol):
    def send(self, msisdn: str, body: str) -> None:
        """Queue a text to ``msisdn`` (E.164). Must not raise for delivery problems."""


def send_all(gateway: SmsGateway, texts: Sequence[tuple[str, str]]) -> None:
    """Queue ``(msisdn, body)`` texts: in one transaction where the gateway can
    (``send_many``: a batch of orders' codes is one commit, not one per text)."""
    many = getattr(gateway, "send_many", None)
    if many is not None:
        many(texts)
        return
    for msisdn, body in texts:
        gateway.send(msisdn, body)


def record_all(gateway: SmsGateway, conn: Connection, texts: Sequence[tuple[str, str]]
               ) -> Callable[[], None]:
    """Record ``texts`` in the caller's transaction (``conn``) where the gateway can
    (``record_many``), so that they exist if and only if what they tell of committed; call
    what this returns once it has (it hands them to the SMSC, or sends them now through a
    gateway that cannot record)."""
    if not texts:
        return _nothing
    record = getattr(gateway, "record_many", None)
    if record is not None:
        dispatch: Callable[[], None] = record(conn, texts)
        return dispatch
    return lambda: send_all(gateway, texts)


def _nothing() -> None:
    pass


def commit_then_text(ledger: Ledger, work: Callable[[Connection], tuple[T, Callable[[], None]]]
                     ) -> T:
    """Run ``work`` in one of the ledger's transactions; it returns its result and what
    :func:`record_all` gave it, which is called once the transaction has committed."""
    out, dispatch = ledger.transaction(work)
    dispatch()
    result: T = out
    return result


class StoredSms:
    """Reading back the ``sms_messages`` table (both backends write there)."""

    engine: Engine

    def messages(self, msisdn: str | None = None, limit: int = 50,
                 direction: str | None = None) -> list[SmsMessage]:
        """The newest messages first, optionally for one number or one direction."""
        return list_messages(self.engine, msisdn, limit, direction)

    def last_to(self, msisdn: str) -> str | None:
        found = self.messages(msisdn, limit=1, direction="out")
        return found[0].body if found else None

    def close(self) -> None:
        """Nothing to release (``SmppSms`` overrides)."""


class RecordingSms(StoredSms):
    """Records outgoing texts in the database; nothing leaves the machine."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def send(self, msisdn: str, body: str) -> None:
        self.send_many([(msisdn, body)])

    def send_many(self, texts: Sequence[tuple[str, str]]) -> None:
        if not texts:
            return
        with self.engine.begin() as conn:
            self.record_many(conn, texts)

    def record_many(self, conn: Connection, texts: Sequence[tuple[str, str]]
                    ) -> Callable[[], None]:
        """Record the texts in ``conn``'s transaction; nothing more to do after it."""
        now = self.clock.now_us()
        insert_many(conn, sms_messages, [
            {"direction": "out", "msisdn": msisdn, "body": body, "status": "recorded",
             "created_at": now} for msisdn, body in texts])
        return _nothing


def list_messages(engine: Engine, msisdn: str | None = None, limit: int = 50,
                  direction: str | None = None) -> list[SmsMessage]:
    t = sms_messages
    stmt = select(t).order_by(t.c.id.desc()).limit(limit)
    if msisdn:
        stmt = stmt.where(t.c.msisdn == msisdn)
    if direction:
        stmt = stmt.where(t.c.direction == direction)
    with engine.connect() as conn:
        return [SmsMessage(r.id, r.direction, r.msisdn, r.body, r.status, r.created_at,
                           r.smsc_message_id, r.error, r.updated_at)
                for r in conn.execute(stmt)]


def record_inbound(engine: Engine, clock: Clock, msisdn: str, body: str) -> int:
    """Record a text received from ``msisdn`` (direction ``in``); returns its id."""
    now = clock.now_us()
    with engine.begin() as conn:
        return int(conn.execute(sms_messages.insert().values(
            direction="in", msisdn=msisdn, body=body, status="received", created_at=now,
            updated_at=now).returning(sms_messages.c.id)).scalar_one())


def build_sms(engine: Engine, settings: Settings, clock: Clock) -> SmsGateway:
    """The gateway ``settings.sms_backend`` names: ``record`` (default) or ``smpp``. An
    ``SmppSms`` is returned unstarted: ``start()`` connects (``build_context`` does)."""
    backend = settings.sms_backend.strip().lower()
    if backend == "record":
        return RecordingSms(engine, clock)
    if backend == "smpp":
        from paycell.gateways.smpp import SmppSms

        return SmppSms(engine, clock, host=settings.smpp_host, port=settings.smpp_port,
                       system_id=settings.smpp_system_id, password=settings.smpp_password,
                       source_addr=settings.sms_source_addr)
    raise ValueError(f"unknown sms_backend {settings.sms_backend!r} (record or smpp)")
