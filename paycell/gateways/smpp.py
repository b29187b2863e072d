"""``SmppSms``: the ``SmsGateway`` over SMPP 3.4, with reconnection, receipts and inbound texts.

``send`` records the text (status ``queued``) and hands it to a background thread running
an asyncio loop; the caller never waits on the network. That thread keeps one
bind_transceiver session (``smpp_session.EsmeSession``) to the SMSC, reconnecting with
exponential backoff (0.5 s doubling to 30 s) whenever it drops, and submits queued texts in
order, each part with ``registered_delivery`` 1. A part counts as sent only once its
``submit_sm_resp`` arrives: a text cut by a dropped connection is kept at the head of the
queue and goes on from its first unanswered part after the rebind (none lost; one whose
answer was lost in the drop is the only case the SMSC may see twice, as with every SMPP
client). Delivery receipts set the text ``delivered`` (every part delivered) or ``failed``
(any part failed); a text the SMSC refuses outright is ``failed`` with the status as
``error``. Inbound texts are recorded (direction ``in``) and handed to ``on_inbound``
(``paycell.payments.sms_commands.handle_inbound``, wired by ``build_context``) on a
worker thread of their own. Database work runs on one worker thread, in order.

``close()`` sends what is queued (for at most ``timeout`` seconds), unbinds and stops; it
is also called at interpreter exit. Texts still queued then stay ``queued`` in the table.

Nothing queued is lost with its process: while a gateway holds texts in its queue it touches
their rows every ``HEARTBEAT_S``, and ``adopt_stale`` (the worker's ``sms`` job, in every
process that runs the worker) takes over texts left ``queued`` and untouched for
``STALE_AFTER_S`` by a process that died, each claimed by one process and sent on from its
first part the SMSC had not accepted.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update

from paycell.clock import Clock
from paycell.gateways import smpp_pdu as P
from paycell.gateways.smpp_session import (
    ESME_RX_T_APPN,
    BindRefusedError,
    EsmeSession,
    SessionClosedError,
    status_name,
)
from paycell.gateways.smpp_text import (
    ESM_TYPE_MASK,
    Part,
    Receipt,
    decode_short_message,
    encode_text,
    parse_receipt,
)
from paycell.gateways.sms import StoredSms, record_inbound, sms_message_parts, sms_messages

log = logging.getLogger(__name__)

STALE_AFTER_S = 120.0  # a queued text untouched this long belongs to a dead process
HEARTBEAT_S = 30.0  # how often a live gateway touches the texts in its queue
TRANSIENT = {0x14, 0x58}  # ESME_RMSGQFUL, ESME_RTHROTTLED: try the same part again later
RECEIPT_TYPES = {0x04, 0x08}  # SMSC delivery receipt, intermediate notification
InboundHandler = Callable[[str, str], None]


@dataclass
class _Job:
    message_id: int
    msisdn: str
    parts: list[Part]
    done: int = 0  # parts the SMSC has accepted
    smsc_ids: list[str] = field(default_factory=list)


def _job(message_id: int, msisdn: str, body: str, done: int = 0) -> _Job:
    """A text's parts, encoded the same on every try (the reference comes from its id)."""
    return _Job(message_id, msisdn, encode_text(body, ref=message_id & 0xFF), done)


def _address(number: str) -> tuple[str, int, int]:
    """(address, TON, NPI): +E.164 is international/ISDN; a short code or name is not."""
    if number.startswith("+"):
        return number[1:], 1, 1
    if number.isdigit():
        return number, 0, 1
    return number, 5, 0  # alphanumeric sender


def _msisdn(addr: str, ton: int) -> str:
    if ton == 1 and not addr.startswith("+"):
        return f"+{addr}"
    from paycell.subscribers.service import normalise_msisdn

    try:
        return normalise_msisdn(addr)
    except Exception:
        return addr


class SmppSms(StoredSms):
    """The SMPP gateway. ``bound`` is set while a session is bound (tests wait on it)."""

    def __init__(self, engine: Engine, clock: Clock, *, host: str, port: int,
                 system_id: str, password: str, source_addr: str = "",
                 enquire_link_s: float = 30.0, response_timeout_s: float = 10.0,
                 backoff_s: tuple[float, float] = (0.5, 30.0),
                 on_inbound: InboundHandler | None = None) -> None:
        self.engine, self.clock = engine, clock
        self.host, self.port = host, port
        self.system_id, self.password, self.source_addr = system_id, password, source_addr
        self.enquire_link_s, self.response_timeout_s = enquire_link_s, response_timeout_s
        self.backoff_s = backoff_s
        self.on_inbound = on_inbound
        self.bound = threading.Event()
        self._jobs: deque[_Job] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._main: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        self._db = ThreadPoolExecutor(1, thread_name_prefix="smpp-db")
        self._inbound = ThreadPoolExecutor(1, thread_name_prefix="smpp-inbound")
        self._early: dict[str, Receipt] = {}  # receipts that came before their submit_sm_resp
        self._mo_parts: dict[tuple[str, int], dict[int, str]] = {}

    # -- the SmsGateway --------------------------------------------------------------------

    def send(self, msisdn: str, body: str) -> None:
        """Record the text as ``queued`` and queue it for the SMSC; returns at once. A
        text too long for 255 parts is recorded ``failed`` (``text_too_long``)."""
        self.send_many([(msisdn, body)])

    def send_many(self, texts: Sequence[tuple[str, str]]) -> None:
        """``send`` for several texts, recorded in one transaction."""
        if not texts:
            return
        with self.engine.begin() as conn:
            dispatch = self.record_many(conn, texts)
        dispatch()

    def record_many(self, conn: Connection, texts: Sequence[tuple[str, str]]
                    ) -> Callable[[], None]:
        """Record the texts as ``queued`` in ``conn``'s transaction; the function returned
        queues them for the SMSC once it has committed (until then nothing is sent; if the
        process dies first, :meth:`adopt_stale` finds them)."""
        now = self.clock.now_us()
        counts = []
        for _, body in texts:
            try:
                counts.append(len(encode_text(body)))
            except ValueError:
                counts.append(0)
        m = sms_messages
        ids = [int(conn.execute(m.insert().values(
            direction="out", msisdn=msisdn, body=body,
            status="queued" if count else "failed", parts=count or None,
            error=None if count else "text_too_long", created_at=now, updated_at=now,
        ).returning(m.c.id)).scalar_one())
            for (msisdn, body), count in zip(texts, counts, strict=True)]
        return lambda: self._dispatch(ids, texts, counts)

    def _dispatch(self, ids: list[int], texts: Sequence[tuple[str, str]],
                  counts: list[int]) -> None:
        jobs = []
        for message_id, (msisdn, body), count in zip(ids, texts, counts, strict=True):
            if count:
                jobs.append(_job(message_id, msisdn, body))
            else:
                log.warning("text %s to %s is too long to send", message_id, msisdn)
        if not jobs:
            return
        with self._lock:
            self._jobs.extend(jobs)
        if self._closing:
            log.warning("SMPP gateway closed: %d texts stay queued", len(jobs))
            return
        self.start()
        self._poke()

    def adopt_stale(self, older_than_s: float = STALE_AFTER_S, limit: int = 500) -> int:
        """Take over outgoing texts left ``queued`` by a process that died: untouched for
        ``older_than_s`` and not in this gateway's queue. Each is claimed by moving its
        ``updated_at`` (of processes racing for it, one wins) and queued here from its first
        part the SMSC has not accepted. Returns how many were taken over."""
        if self._closing:
            return 0
        m = sms_messages
        now = self.clock.now_us()
        with self._lock:
            mine = {j.message_id for j in self._jobs}
        with self.engine.connect() as conn:
            rows = conn.execute(select(m.c.id, m.c.msisdn, m.c.body, m.c.updated_at).where(
                m.c.direction == "out", m.c.status == "queued", m.c.parts.is_not(None),
                m.c.updated_at < now - int(older_than_s * 1_000_000))
                .order_by(m.c.id).limit(limit)).all()
        adopted = 0
        for r in rows:
            if r.id in mine:
                continue
            with self.engine.begin() as conn:
                if conn.execute(update(m).where(m.c.id == r.id, m.c.status == "queued",
                                                m.c.updated_at == r.updated_at)
                                .values(updated_at=now)).rowcount != 1:
                    continue  # another process took it, or it moved on
                done = int(conn.execute(select(func.count()).select_from(sms_message_parts)
                                        .where(sms_message_parts.c.message_id == r.id))
                           .scalar_one())
            job = _job(r.id, r.msisdn, r.body, done)  # the same parts as the first try
            log.warning("taking over text %s to %s left queued (%d of %d parts sent)",
                        r.id, r.msisdn, done, len(job.parts))
            with self._lock:
                self._jobs.append(job)
            adopted += 1
        if adopted and not self._closing:
            self.start()
            self._poke()
        return adopted

    def start(self, on_inbound: InboundHandler | None = None) -> SmppSms:
        """Start the background thread (idempotent); it connects and binds."""
        if on_inbound is not None:
            self.on_inbound = on_inbound
        with self._lock:
            if self._thread is not None or self._closing:
                return self
            started = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(started,), name="smpp",
                                            daemon=True)
            self._thread.start()
        started.wait()
        atexit.register(self.close)
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (for at most ``timeout`` s), unbind, stop. Idempotent."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            thread = self._thread
        atexit.unregister(self.close)
        self._inbound.shutdown(wait=True)  # replies it queues still go out below
        if thread is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._request_stop)
            thread.join(timeout)
            if thread.is_alive() and self._main is not None:
                self._loop.call_soon_threadsafe(self._main.cancel)
                thread.join(2.0)
        self._db.shutdown(wait=True)
        left = len(self._jobs)
        if left:
            log.warning("SMPP gateway closed with %d text(s) still queued", left)

    # -- the background loop ---------------------------------------------------------------

    def _run(self, started: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._wake, self._stop = asyncio.Event(), asyncio.Event()
        self._main = loop.create_task(self._connect_forever())
        heartbeat = loop.create_task(self._heartbeat())
        started.set()
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(self._main)
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(heartbeat)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(wake.set)

    def _request_stop(self) -> None:
        assert self._stop is not None and self._wake is not None
        self._stop.set()
        self._wake.set()

    async def _connect_forever(self) -> None:
        assert self._stop is not None
        delay = self.backoff_s[0]
        while not self._stop.is_set():
            session = EsmeSession(self._on_deliver, enquire_link_s=self.enquire_link_s,
                                  response_timeout_s=self.response_timeout_s)
            try:
                await session.open(self.host, self.port, self.system_id, self.password,
                                   connect_timeout_s=self.response_timeout_s)
            except BindRefusedError as exc:
                log.error("SMSC %s:%s refused the bind of %r: %s; retrying in %.1f s",
                          self.host, self.port, self.system_id, status_name(exc.status), delay)
            except (OSError, TimeoutError, SessionClosedError) as exc:
                log.warning("cannot reach SMSC %s:%s (%s); retrying in %.1f s", self.host,
                            self.port, exc or type(exc).__name__, delay)
            else:
                log.info("bound to SMSC %s:%s as %r", self.host, self.port, self.system_id)
                delay = self.backoff_s[0]
                self.bound.set()
                try:
                    await self._serve(session)
                finally:
                    self.bound.clear()
                if self._stop.is_set():
                    return
                log.warning("connection to SMSC %s:%s lost; reconnecting", self.host,
                            self.port)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            delay = min(delay * 2, self.backoff_s[1])

    async def _heartbeat(self) -> None:
        """Touch the rows of the texts in the queue, so no other process adopts them."""
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            with self._lock:
                ids = [j.message_id for j in self._jobs]
            if ids:
                with contextlib.suppress(Exception):  # a database hiccup: next beat
                    await self._in_db(self._touch, ids)

    def _touch(self, ids: list[int]) -> None:
        m = sms_messages
        with self.engine.begin() as conn:
            conn.execute(update(m).where(m.c.id.in_(ids), m.c.status == "queued")
                         .values(updated_at=self.clock.now_us()))

    async def _serve(self, session: EsmeSession) -> None:
        """Submit queued texts until the connection ends, or until stopped and drained."""
        sender = asyncio.ensure_future(self._send_queued(session))
        try:
            await asyncio.wait({sender, session.closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not sender.done():
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sender
        if sender.cancelled() or sender.exception() is not None:
            session.abort()
        elif not session.closed.done():
            await session.unbind()
            log.info("unbound from SMSC %s:%s", self.host, self.port)

    async def _send_queued(self, session: EsmeSession) -> None:
        assert self._wake is not None and self._stop is not None
        while True:
            with self._lock:
                job = self._jobs[0] if self._jobs else None
            if job is None:
                if self._stop.is_set():
                    return
                self._wake.clear()
                with self._lock:
                    empty = not self._jobs
                if empty:
                    await self._wake.wait()
                continue
            await self._submit(session, job)  # raises if the connection went
            with self._lock:
                self._jobs.popleft()

    async def _submit(self, session: EsmeSession, job: _Job) -> None:
        dest, ton, npi = _address(job.msisdn)
        src, src_ton, src_npi = _address(self.source_addr)
        while job.done < len(job.parts):
            part = job.parts[job.done]
            status, smsc_id = await session.submit(P.ShortMessage(
                source_addr=src, destination_addr=dest, short_message=part.short_message,
                source_addr_ton=src_ton, source_addr_npi=src_npi, dest_addr_ton=ton,
                dest_addr_npi=npi, esm_class=part.esm_class, registered_delivery=1,
                data_coding=part.data_coding))
            if status in TRANSIENT:
                log.info("SMSC busy (%s): text %s waits", status_name(status), job.message_id)
                await asyncio.sleep(1.0)
                continue
            if status != P.ESME_ROK:
                log.warning("SMSC refused text %s to %s: %s", job.message_id, job.msisdn,
                            status_name(status))
                await self._in_db(self._fail, job.message_id,
                                  f"submit_sm refused: {status_name(status)}")
                return
            job.done += 1
            job.smsc_ids.append(smsc_id)
            await self._in_db(self._part_accepted, job.message_id, job.done, smsc_id,
                              len(job.parts))

    async def _in_db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    # -- what the SMSC sends ---------------------------------------------------------------

    async def _on_deliver(self, m: P.ShortMessage) -> int:
        decoded = decode_short_message(m.short_message, m.data_coding, m.esm_class)
        if m.esm_class & ESM_TYPE_MASK in RECEIPT_TYPES:
            receipt = parse_receipt(decoded.text, m.tlvs)
            if receipt is None:
                log.warning("unreadable delivery receipt: %r", decoded.text[:100])
            elif receipt.outcome is not None:
                await self._in_db(self._apply_receipt, receipt)
            return P.ESME_ROK
        if self._closing:
            return ESME_RX_T_APPN  # the SMSC delivers it again, to whoever binds next
        msisdn = _msisdn(m.source_addr, m.source_addr_ton)
        text: str | None = decoded.text
        if decoded.concat is not None:
            text = self._join_mo(msisdn, decoded.concat, decoded.text)
            if text is None:
                return P.ESME_ROK  # more parts to come
        assert text is not None
        await self._in_db(record_inbound, self.engine, self.clock, msisdn, text)
        if self.on_inbound is None:
            log.warning("text from %s recorded; no handler for inbound texts", msisdn)
        else:
            self._inbound.submit(self._handle_inbound, msisdn, text)
        return P.ESME_ROK

    def _join_mo(self, msisdn: str, concat: tuple[int, int, int], text: str) -> str | None:
        ref, total, seq = concat
        parts = self._mo_parts.setdefault((msisdn, ref), {})
        parts[seq] = text
        if len(parts) < total:
            return None
        del self._mo_parts[(msisdn, ref)]
        return "".join(parts[i] for i in sorted(parts))

    def _handle_inbound(self, msisdn: str, body: str) -> None:
        try:
            if self.on_inbound is not None:
                self.on_inbound(msisdn, body)
        except Exception:
            log.exception("handling the text from %s failed", msisdn)

    # -- the database (on the smpp-db thread, in order) ------------------------------------

    def _part_accepted(self, message_id: int, seq: int, smsc_id: str, total: int) -> None:
        now = self.clock.now_us()
        with self.engine.begin() as conn:
            conn.execute(sms_message_parts.insert().values(
                message_id=message_id, seq=seq, smsc_message_id=smsc_id, status="submitted",
                created_at=now, updated_at=now))
            values: dict[str, Any] = {"updated_at": now}
            if seq == 1:
                values["smsc_message_id"] = smsc_id
            if seq == total:
                values["status"] = "submitted"
            conn.execute(sms_messages.update().where(sms_messages.c.id == message_id)
                         .values(**values))
        early = self._early.pop(smsc_id, None)
        if early is not None:
            self._apply_receipt(early)

    def _fail(self, message_id: int, error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sms_messages.update().where(sms_messages.c.id == message_id)
                         .values(status="failed", error=error[:200],
                                 updated_at=self.clock.now_us()))

    def _apply_receipt(self, receipt: Receipt) -> None:
        now = self.clock.now_us()
        parts = sms_message_parts
        outcome = receipt.outcome
        error = None if outcome == "delivered" else f"{receipt.stat} err:{receipt.err}"
        with self.engine.begin() as conn:
            row = conn.execute(select(parts.c.id, parts.c.message_id)
                               .where(parts.c.smsc_message_id == receipt.message_id,
                                      parts.c.status == "submitted")
                               .order_by(parts.c.id.desc()).limit(1)).first()
            if row is None:
                if len(self._early) < 10_000:
                    self._early[receipt.message_id] = receipt
                return
            conn.execute(parts.update().where(parts.c.id == row.id)
                         .values(status=outcome, error=error, updated_at=now))
            counts: dict[str, int] = dict(conn.execute(
                select(parts.c.status, func.count()).where(parts.c.message_id == row.message_id)
                .group_by(parts.c.status)).all())
            total = conn.execute(select(sms_messages.c.parts)
                                 .where(sms_messages.c.id == row.message_id)).scalar_one()
            if counts.get("failed"):
                values: dict[str, Any] = {"status": "failed"}
                if error is not None:
                    values["error"] = error
            elif counts.get("delivered", 0) == total:
                values = {"status": "delivered"}
            else:
                return
            conn.execute(sms_messages.update().where(sms_messages.c.id == row.message_id)
                         .values(updated_at=now, **values))


def adopt_stale_texts(sms: object) -> int:
    """The worker's ``sms`` job: an SMPP gateway takes over texts a dead process left
    queued; the recording gateway (nothing to send) does nothing."""
    return sms.adopt_stale() if isinstance(sms, SmppSms) else 0
