"""The subset of the SMPP 3.4 PDU codec the loopback SMSC speaks.

The client (``smpp.py``) uses the ``smpp34`` library; the simulator has this codec of its
own, written from the specification, so that a test's peer is not the code under test.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

HEADER = struct.Struct(">IIII")  # command_length, command_id, command_status, sequence
MAX_PDU = 64 * 1024
RESP = 0x80000000

GENERIC_NACK = 0x80000000
BIND_RECEIVER = 0x00000001
BIND_TRANSMITTER = 0x00000002
SUBMIT_SM = 0x00000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
BIND_TRANSCEIVER = 0x00000009
ENQUIRE_LINK = 0x00000015
BINDS = {BIND_RECEIVER: "RX", BIND_TRANSMITTER: "TX", BIND_TRANSCEIVER: "TRX"}

ESME_ROK = 0x00
ESME_RINVCMDLEN = 0x02
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RALYBND = 0x05
ESME_RSYSERR = 0x08
ESME_RINVDSTADR = 0x0B
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVSYSID = 0x0F


class PduError(ValueError):
    pass


@dataclass
class Pdu:
    command_id: int
    status: int
    sequence: int
    body: bytes = b""


def encode(command_id: int, sequence: int, body: bytes = b"", status: int = ESME_ROK) -> bytes:
    return HEADER.pack(HEADER.size + len(body), command_id, status, sequence) + body


def cstr(value: str | bytes) -> bytes:
    raw = value.encode("ascii") if isinstance(value, str) else value
    return raw + b"\0"


class Reader:
    """Reads the fields of a PDU body in order."""

    def __init__(self, body: bytes) -> None:
        self.body, self.pos = body, 0

    def cstr(self) -> str:
        end = self.body.find(b"\0", self.pos)
        if end < 0:
            raise PduError("unterminated C-Octet string")
        value = self.body[self.pos:end].decode("ascii", errors="replace")
        self.pos = end + 1
        return value

    def u8(self) -> int:
        if self.pos >= len(self.body):
            raise PduError("body too short")
        self.pos += 1
        return self.body[self.pos - 1]

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.body):
            raise PduError("body too short")
        self.pos += n
        return self.body[self.pos - n:self.pos]

    def tlvs(self) -> dict[int, bytes]:
        found: dict[int, bytes] = {}
        while self.pos + 4 <= len(self.body):
            tag, length = struct.unpack_from(">HH", self.body, self.pos)
            self.pos += 4
            found[tag] = self.take(length)
        return found


@dataclass
class Bind:
    system_id: str
    password: str
    system_type: str
    interface_version: int


def parse_bind(body: bytes) -> Bind:
    r = Reader(body)
    system_id, password, system_type = r.cstr(), r.cstr(), r.cstr()
    return Bind(system_id, password, system_type, r.u8())


@dataclass
class ShortMessage:
    """The body of a submit_sm or deliver_sm."""
    source_addr: str
    destination_addr: str
    short_message: bytes = b""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    dest_addr_ton: int = 1
    dest_addr_npi: int = 1
    esm_class: int = 0
    registered_delivery: int = 0
    data_coding: int = 0
    service_type: str = ""
    tlvs: dict[int, bytes] = field(default_factory=dict)


def parse_short_message(body: bytes) -> ShortMessage:
    r = Reader(body)
    service_type = r.cstr()
    src_ton, src_npi, src = r.u8(), r.u8(), r.cstr()
    dst_ton, dst_npi, dst = r.u8(), r.u8(), r.cstr()
    esm_class, _protocol_id, _priority = r.u8(), r.u8(), r.u8()
    r.cstr()  # schedule_delivery_time
    r.cstr()  # validity_period
    registered_delivery, _replace, data_coding, _default_id = r.u8(), r.u8(), r.u8(), r.u8()
    text = r.take(r.u8())
    return ShortMessage(src, dst, text, src_ton, src_npi, dst_ton, dst_npi, esm_class,
                        registered_delivery, data_coding, service_type, r.tlvs())


def short_message_body(m: ShortMessage) -> bytes:
    if len(m.short_message) > 254:
        raise PduError("short_message longer than 254 octets")
    body = (cstr(m.service_type) + bytes([m.source_addr_ton, m.source_addr_npi])
            + cstr(m.source_addr) + bytes([m.dest_addr_ton, m.dest_addr_npi])
            + cstr(m.destination_addr) + bytes([m.esm_class, 0, 0]) + cstr("") + cstr("")
            + bytes([m.registered_delivery, 0, m.data_coding, 0, len(m.short_message)])
            + m.short_message)
    for tag, value in m.tlvs.items():
        body += struct.pack(">HH", tag, len(value)) + value
    return body
