"""A loopback SMSC: a real SMPP 3.4 server on TCP, for tests and for trying paycell by hand.

``SmscSim`` runs an asyncio server in a thread of its own. It accepts binds that carry its
``system_id`` and ``password`` (others are refused with ``ESME_RINVSYSID`` /
``ESME_RINVPASWD``), answers ``submit_sm`` with message ids, sends a delivery receipt
(``deliver_sm``, ``esm_class`` 0x04) for each part that asked for one, answers and sends
``enquire_link``, and keeps everything it received for a test to read. A test can inject
mobile-originated texts (``inject_mo``), drop every connection (``drop_connections``) and
script outcomes per number (``outcomes``: a receipt ``stat`` such as ``UNDELIV``, or
``reject`` to refuse the ``submit_sm`` itself). Receipts for a session that has gone are
kept and sent once the same system_id binds again, as a real SMSC stores and forwards.

``paycell sms smsc --port 2775`` runs one in the foreground (docs/sms.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from paycell.gateways import smpp_pdu as P
from paycell.gateways.smpp_text import (
    ESM_RECEIPT,
    STATE_CODE,
    TLV_MESSAGE_STATE,
    TLV_RECEIPTED_MESSAGE_ID,
    decode_short_message,
    encode_text,
    format_receipt,
)

log = logging.getLogger(__name__)


@dataclass
class BindAttempt:
    system_id: str
    bind_type: str
    status: int

    @property
    def ok(self) -> bool:
        return self.status == P.ESME_ROK


@dataclass
class Submitted:
    """One submit_sm as received (one part of a long text)."""
    session: int
    msisdn: str  # +E.164 when the address was international
    source_addr: str
    data_coding: int
    esm_class: int
    registered_delivery: int
    short_message: bytes
    text: str  # this part's text
    concat: tuple[int, int, int] | None
    message_id: str  # "" if refused
    status: int


@dataclass
class Text:
    """A whole text (its parts joined) received by the SMSC."""
    msisdn: str
    text: str
    data_coding: int
    message_ids: list[str] = field(default_factory=list)


def wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes (tests' bounded wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def _msisdn(addr: str, ton: int) -> str:
    return f"+{addr}" if ton == 1 and not addr.startswith("+") else addr


class _Session:
    def __init__(self, sim: SmscSim, number: int, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.sim, self.number = sim, number
        self.reader, self.writer = reader, writer
        self.system_id = ""
        self.bind_type = ""
        self.waiting: dict[int, asyncio.Future[P.Pdu]] = {}

    @property
    def can_receive(self) -> bool:
        return self.bind_type in ("RX", "TRX")

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(self, command_id: int, body: bytes = b"",
                      timeout: float = 5.0) -> P.Pdu | None:
        """Send a request and wait for its response; None if none came."""
        seq = self.sim.next_sequence()
        fut: asyncio.Future[P.Pdu] = asyncio.get_running_loop().create_future()
        self.waiting[seq] = fut
        try:
            await self.write(P.encode(command_id, seq, body))
            return await asyncio.wait_for(fut, timeout)
        except (TimeoutError, OSError, ConnectionError):
            return None
        finally:
            self.waiting.pop(seq, None)

    def abort(self) -> None:
        transport = self.writer.transport
        if transport is not None:
            transport.abort()


class SmscSim:
    """The loopback SMSC. ``start()`` it (or use it as a context manager); ``port`` is the
    port it listens on (``port=0`` picks a free one)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, system_id: str = "paycell",
                 password: str = "secret", name: str = "PAYCELLSIM",
                 receipt_delay_s: float = 0.0) -> None:
        self.host, self.port = host, port
        self.system_id, self.password, self.name = system_id, password, name
        self.receipt_delay_s = receipt_delay_s
        self.outcomes: dict[str, str] = {}  # msisdn -> receipt stat, or "reject"
        self.on_text: Callable[[Text], None] | None = None  # called as each text completes
        self.binds: list[BindAttempt] = []
        self.submitted: list[Submitted] = []
        self.texts: list[Text] = []
        self.receipts_sent: list[str] = []  # message ids
        self.enquire_links = 0
        self.unbinds = 0
        self._lock = threading.Lock()
        self._sessions: dict[int, _Session] = {}
        self._numbers = itertools.count(1)
        self._sequence = itertools.count(1)
        # Ids unique across runs too, as a real SMSC's are.
        self._message_ids = itertools.count(secrets.randbits(40))
        self._held: list[tuple[str, bytes]] = []  # receipts waiting for a receiver to bind
        self._partial: dict[tuple[str, int], dict[int, Submitted]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None

    # -- running ---------------------------------------------------------------------------

    def start(self) -> SmscSim:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._serve, self.host, self.port))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="smsc-sim", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        log.info("loopback SMSC listening on %s:%s (system_id %s)", self.host, self.port,
                 self.system_id)
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for s in list(self._sessions.values()):
                s.abort()

        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop = None

    def __enter__(self) -> SmscSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro_fn: Callable[[], object], timeout: float = 10.0) -> object:
        if self._loop is None:
            raise RuntimeError("the SMSC is not running")
        return asyncio.run_coroutine_threadsafe(coro_fn(), self._loop).result(timeout)  # type: ignore[arg-type]

    # -- what a test does ------------------------------------------------------------------

    def bound_sessions(self) -> int:
        with self._lock:
            return sum(1 for s in self._sessions.values() if s.bind_type)

    def inject_mo(self, msisdn: str, text: str, *, to: str = "10690000") -> bool:
        """A subscriber texts ``to``: deliver_sm(s) to a bound receiver. True if every part
        was acknowledged; False if no receiver is bound or it refused."""
        digits = msisdn.lstrip("+")
        parts = encode_text(text, ref=next(self._sequence) & 0xFF)

        async def send() -> bool:
            session = self._receiver(self.system_id)
            if session is None:
                return False
            for part in parts:
                body = P.short_message_body(P.ShortMessage(
                    source_addr=digits, destination_addr=to, short_message=part.short_message,
                    source_addr_ton=1 if msisdn.startswith("+") else 0, source_addr_npi=1,
                    dest_addr_ton=0, dest_addr_npi=1, esm_class=part.esm_class,
                    data_coding=part.data_coding))
                resp = await session.request(P.DELIVER_SM, body)
                if resp is None or resp.status != P.ESME_ROK:
                    return False
            return True

        return bool(self._call(send))

    def send_enquire_link(self) -> bool:
        """enquire_link to every bound session; True if at least one answered, all did."""
        async def ping() -> bool:
            sessions = [s for s in self._sessions.values() if s.bind_type]
            answers = [await s.request(P.ENQUIRE_LINK) for s in sessions]
            return bool(answers) and all(a is not None and a.status == P.ESME_ROK
                                         for a in answers)

        return bool(self._call(ping))

    def drop_connections(self) -> int:
        """Close every connection at once, without unbind (a network failure)."""
        async def drop() -> int:
            sessions = list(self._sessions.values())
            for s in sessions:
                s.abort()
            return len(sessions)

        return int(self._call(drop))  # type: ignore[call-overload]

    def texts_to(self, msisdn: str) -> list[Text]:
        with self._lock:
            return [t for t in self.texts if t.msisdn == msisdn]

    def wait_for(self, predicate: Callable[[], object], timeout: float = 10.0) -> bool:
        return wait_for(predicate, timeout)

    # -- the protocol ----------------------------------------------------------------------

    def next_sequence(self) -> int:
        return next(self._sequence)

    def _receiver(self, system_id: str) -> _Session | None:
        for s in self._sessions.values():
            if s.system_id == system_id and s.can_receive:
                return s
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(self, next(self._numbers), reader, writer)
        with self._lock:
            self._sessions[session.number] = session
        try:
            while True:
                header = await reader.readexactly(P.HEADER.size)
                length, command_id, status, seq = P.HEADER.unpack(header)
                if not P.HEADER.size <= length <= P.MAX_PDU:
                    await session.write(P.encode(P.GENERIC_NACK, seq,
                                                 status=P.ESME_RINVCMDLEN))
                    break
                body = await reader.readexactly(length - P.HEADER.size)
                if not await self._handle(session, P.Pdu(command_id, status, seq, body)):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except P.PduError as exc:
            log.warning("session %s: bad PDU: %s", session.number, exc)
        finally:
            with self._lock:
                self._sessions.pop(session.number, None)
            for fut in session.waiting.values():
                if not fut.done():
                    fut.cancel()
            session.abort()

    async def _handle(self, s: _Session, pdu: P.Pdu) -> bool:
        """Answer one PDU; False ends the session."""
        cid = pdu.command_id
        if cid & P.RESP:
            fut = s.waiting.get(pdu.sequence)
            if fut is not None and not fut.done():
                fut.set_result(pdu)
            return True
        if cid in P.BINDS:
            return await self._bind(s, pdu)
        if cid == P.ENQUIRE_LINK:
            self.enquire_links += 1
            await s.write(P.encode(cid | P.RESP, pdu.sequence))
            return True
        if cid == P.UNBIND:
            self.unbinds += 1
            await s.write(P.encode(cid | P.RESP, pdu.sequence))
            return False
        if not s.bind_type:
            await s.write(P.encode(cid | P.RESP, pdu.sequence, status=P.ESME_RINVBNDSTS))
            return True
        if cid == P.SUBMIT_SM and s.bind_type in ("TX", "TRX"):
            await self._submit(s, pdu)
            return True
        await s.write(P.encode(P.GENERIC_NACK, pdu.sequence, status=P.ESME_RINVCMDID))
        return True

    async def _bind(self, s: _Session, pdu: P.Pdu) -> bool:
        bind = P.parse_bind(pdu.body)
        bind_type = P.BINDS[pdu.command_id]
        if s.bind_type:
            status = P.ESME_RALYBND
        elif bind.system_id != self.system_id:
            status = P.ESME_RINVSYSID
        elif bind.password != self.password:
            status = P.ESME_RINVPASWD
        else:
            status = P.ESME_ROK
        with self._lock:
            self.binds.append(BindAttempt(bind.system_id, bind_type, status))
        await s.write(P.encode(pdu.command_id | P.RESP, pdu.sequence, P.cstr(self.name),
                               status))
        if status != P.ESME_ROK:
            log.info("bind refused: system_id %r (status 0x%02X)", bind.system_id, status)
            return status == P.ESME_RALYBND
        s.system_id, s.bind_type = bind.system_id, bind_type
        if s.can_receive and self._held:
            held, self._held = self._held, []
            for message_id, body in held:
                asyncio.get_running_loop().create_task(
                    self._deliver_receipt(s.system_id, body, message_id))
        return True

    async def _submit(self, s: _Session, pdu: P.Pdu) -> None:
        m = P.parse_short_message(pdu.body)
        msisdn = _msisdn(m.destination_addr, m.dest_addr_ton)
        decoded = decode_short_message(m.short_message, m.data_coding, m.esm_class)
        outcome = self.outcomes.get(msisdn, "DELIVRD")
        status = P.ESME_RINVDSTADR if outcome == "reject" else P.ESME_ROK
        message_id = f"{next(self._message_ids):X}" if status == P.ESME_ROK else ""
        part = Submitted(s.number, msisdn, m.source_addr, m.data_coding, m.esm_class,
                         m.registered_delivery, m.short_message, decoded.text,
                         decoded.concat, message_id, status)
        with self._lock:
            self.submitted.append(part)
        body = P.cstr(message_id) if status == P.ESME_ROK else b""
        await s.write(P.encode(P.SUBMIT_SM | P.RESP, pdu.sequence, body, status))
        if status != P.ESME_ROK:
            return
        self._collect(part)
        if m.registered_delivery & 0x01:
            receipt = P.short_message_body(P.ShortMessage(
                source_addr=m.destination_addr, destination_addr=m.source_addr,
                source_addr_ton=m.dest_addr_ton, source_addr_npi=m.dest_addr_npi,
                dest_addr_ton=m.source_addr_ton, dest_addr_npi=m.source_addr_npi,
                esm_class=ESM_RECEIPT,
                short_message=format_receipt(message_id, outcome, "000" if outcome ==
                                             "DELIVRD" else "001").encode("ascii"),
                tlvs={TLV_RECEIPTED_MESSAGE_ID: P.cstr(message_id),
                      TLV_MESSAGE_STATE: bytes([STATE_CODE.get(outcome, 7)])}))
            asyncio.get_running_loop().create_task(self._deliver_receipt(s.system_id,
                                                                         receipt, message_id))

    def _collect(self, part: Submitted) -> None:
        """Join the parts of long texts into ``texts``."""
        with self._lock:
            if part.concat is None:
                done: Text | None = Text(part.msisdn, part.text, part.data_coding,
                                         [part.message_id])
            else:
                ref, total, seq = part.concat
                parts = self._partial.setdefault((part.msisdn, ref), {})
                parts[seq] = part
                done = None
                if len(parts) == total:
                    del self._partial[(part.msisdn, ref)]
                    ordered = [parts[i] for i in sorted(parts)]
                    done = Text(part.msisdn, "".join(p.text for p in ordered),
                                part.data_coding, [p.message_id for p in ordered])
            if done is not None:
                self.texts.append(done)
        if done is not None and self.on_text is not None:
            self.on_text(done)

    async def _deliver_receipt(self, system_id: str, body: bytes, message_id: str = "") -> None:
        if self.receipt_delay_s:
            await asyncio.sleep(self.receipt_delay_s)
        session = self._receiver(system_id)
        resp = await session.request(P.DELIVER_SM, body) if session is not None else None
        if resp is None or resp.status != P.ESME_ROK:
            self._held.append((message_id, body))  # stored and forwarded on the next bind
            return
        with self._lock:
            self.receipts_sent.append(message_id)
