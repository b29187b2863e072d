"""One SMPP 3.4 session, ESME side, over asyncio TCP: bind_transceiver, submit_sm,
deliver_sm (handed to a callback, answered with its status), enquire_link both ways,
unbind. Reconnecting is the caller's business (``smpp.SmppSms``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable

from paycell.gateways import smpp_pdu as P

log = logging.getLogger(__name__)

STATUS_NAMES = {
    0x00: "ESME_ROK", 0x01: "ESME_RINVMSGLEN", 0x02: "ESME_RINVCMDLEN", 0x03: "ESME_RINVCMDID",
    0x04: "ESME_RINVBNDSTS", 0x05: "ESME_RALYBND", 0x08: "ESME_RSYSERR",
    0x0A: "ESME_RINVSRCADR", 0x0B: "ESME_RINVDSTADR", 0x0D: "ESME_RBINDFAIL",
    0x0E: "ESME_RINVPASWD", 0x0F: "ESME_RINVSYSID", 0x14: "ESME_RMSGQFUL",
    0x45: "ESME_RSUBMITFAIL", 0x58: "ESME_RTHROTTLED", 0x64: "ESME_RX_T_APPN",
}
ESME_RX_T_APPN = 0x64  # temporary application error: the SMSC delivers again later


def status_name(status: int) -> str:
    return STATUS_NAMES.get(status, f"0x{status:08X}")


class BindRefusedError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"bind refused: {status_name(status)}")
        self.status = status


class SessionClosedError(ConnectionError):
    """The connection ended before an answer came."""


DeliverHandler = Callable[[P.ShortMessage], Awaitable[int]]


class EsmeSession:
    """A bound transceiver session. ``open`` connects and binds; ``closed`` completes when
    the connection ends, whoever ended it."""

    def __init__(self, on_deliver: DeliverHandler, *, enquire_link_s: float = 30.0,
                 response_timeout_s: float = 10.0) -> None:
        self.on_deliver = on_deliver
        self.enquire_link_s = enquire_link_s
        self.response_timeout_s = response_timeout_s
        self.smsc_system_id = ""
        self._sequence = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[P.Pdu]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: set[asyncio.Task[object]] = set()  # deliveries: left to finish
        self._own: set[asyncio.Task[object]] = set()  # reader, keepalive: end with the session
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def open(self, host: str, port: int, system_id: str, password: str, *,
                   connect_timeout_s: float = 10.0) -> None:
        """Connect and bind; raises OSError/TimeoutError if the SMSC cannot be reached and
        BindRefusedError if it refuses the bind."""
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                connect_timeout_s)
        self._writer = writer
        self._spawn(self._read(reader), own=True)
        body = (P.cstr(system_id) + P.cstr(password) + P.cstr("") + bytes([0x34, 0, 0])
                + P.cstr(""))
        try:
            resp = await self.request(P.BIND_TRANSCEIVER, body)
        except BaseException:
            self.abort()
            raise
        if resp.status != P.ESME_ROK:
            self.abort()
            raise BindRefusedError(resp.status)
        with contextlib.suppress(P.PduError):
            self.smsc_system_id = P.Reader(resp.body).cstr()
        self._spawn(self._keepalive(), own=True)

    async def submit(self, message: P.ShortMessage) -> tuple[int, str]:
        """submit_sm; returns (command_status, message_id). Raises SessionClosedError or
        TimeoutError when no answer came (the SMSC may or may not have taken it)."""
        resp = await self.request(P.SUBMIT_SM, P.short_message_body(message))
        message_id = ""
        if resp.status == P.ESME_ROK:
            message_id = P.Reader(resp.body).cstr()
        return resp.status, message_id

    async def unbind(self) -> None:
        """Unbind politely, then close. Never raises."""
        with contextlib.suppress(Exception):
            await self.request(P.UNBIND)
        self.abort()

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._finish()

    async def request(self, command_id: int, body: bytes = b"") -> P.Pdu:
        seq = next(self._sequence)
        fut: asyncio.Future[P.Pdu] = asyncio.get_running_loop().create_future()
        self._waiting[seq] = fut
        try:
            await self._write(P.encode(command_id, seq, body))
            return await asyncio.wait_for(fut, self.response_timeout_s)
        finally:
            self._waiting.pop(seq, None)

    # -- inside ----------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[object], own: bool = False) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        tasks = self._own if own else self._tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _write(self, data: bytes) -> None:
        if self._writer is None or self.closed.done():
            raise SessionClosedError("not connected")
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (OSError, RuntimeError) as exc:
            self.abort()
            raise SessionClosedError(str(exc)) from exc

    def _finish(self) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(SessionClosedError("connection closed"))
        current = asyncio.current_task()
        for task in list(self._own):
            if task is not current:
                task.cancel()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                header = await reader.readexactly(P.HEADER.size)
                length, command_id, status, seq = P.HEADER.unpack(header)
                if not P.HEADER.size <= length <= P.MAX_PDU:
                    log.warning("SMSC sent a PDU of %d octets: closing", length)
                    break
                body = await reader.readexactly(length - P.HEADER.size)
                if not await self._dispatch(P.Pdu(command_id, status, seq, body)):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self.abort()

    async def _dispatch(self, pdu: P.Pdu) -> bool:
        """Handle one PDU from the SMSC; False ends the session."""
        cid = pdu.command_id
        if cid & P.RESP:
            fut = self._waiting.get(pdu.sequence)
            if fut is not None and not fut.done():
                fut.set_result(pdu)
            elif cid == P.GENERIC_NACK:
                log.warning("SMSC sent generic_nack %s", status_name(pdu.status))
            return True
        if cid == P.ENQUIRE_LINK:
            await self._write(P.encode(cid | P.RESP, pdu.sequence))
        elif cid == P.DELIVER_SM:
            self._spawn(self._deliver(pdu))
        elif cid == P.UNBIND:
            log.info("SMSC unbound the session")
            await self._write(P.encode(cid | P.RESP, pdu.sequence))
            return False
        else:
            await self._write(P.encode(P.GENERIC_NACK, pdu.sequence,
                                       status=P.ESME_RINVCMDID))
        return True

    async def _deliver(self, pdu: P.Pdu) -> None:
        try:
            message = P.parse_short_message(pdu.body)
        except P.PduError as exc:
            log.warning("unreadable deliver_sm: %s", exc)
            status = P.ESME_RSYSERR
        else:
            try:
                status = await self.on_deliver(message)
            except Exception:
                log.exception("deliver_sm handler failed")
                status = ESME_RX_T_APPN
        with contextlib.suppress(SessionClosedError):
            await self._write(P.encode(P.DELIVER_SM | P.RESP, pdu.sequence, P.cstr(""),
                                       status))

    async def _keepalive(self) -> None:
        """enquire_link every ``enquire_link_s``; a link that does not answer is dead."""
        while True:
            await asyncio.sleep(self.enquire_link_s)
            try:
                await self.request(P.ENQUIRE_LINK)
            except (TimeoutError, SessionClosedError):
                log.warning("SMSC did not answer enquire_link: closing the connection")
                self.abort()
                return
