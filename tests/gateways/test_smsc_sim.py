"""The loopback SMSC and the short_message rules, checked against independent code: raw
bytes built here from the SMPP 3.4 specification, and the ``smpp34`` library's client."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator

import pytest
import smpp34

from paycell.gateways.smpp_text import (
    DC_DEFAULT,
    DC_UCS2,
    ESM_UDHI,
    decode_short_message,
    encode_text,
    format_receipt,
    parse_receipt,
)
from paycell.gateways.smsc_sim import SmscSim


@pytest.fixture
def smsc() -> Iterator[SmscSim]:
    sim = SmscSim(system_id="esme1", password="pw").start()
    try:
        yield sim
    finally:
        sim.stop()


def _pdu(command_id: int, seq: int, body: bytes = b"") -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, 0, seq) + body


def _read(sock: socket.socket) -> tuple[int, int, int, bytes]:
    header = b""
    while len(header) < 16:
        chunk = sock.recv(16 - len(header))
        assert chunk, "connection closed"
        header += chunk
    length, command_id, status, seq = struct.unpack(">IIII", header)
    body = b""
    while len(body) < length - 16:
        body += sock.recv(length - 16 - len(body))
    return command_id, status, seq, body


def _bind_body(system_id: bytes, password: bytes) -> bytes:
    return system_id + b"\0" + password + b"\0" + b"\0" + bytes([0x34, 0, 0]) + b"\0"


def test_bind_with_a_wrong_password_is_refused(smsc: SmscSim) -> None:
    with socket.create_connection(("127.0.0.1", smsc.port), timeout=5) as sock:
        sock.sendall(_pdu(0x09, 1, _bind_body(b"esme1", b"nope")))
        command_id, status, seq, _ = _read(sock)
    assert (command_id, status, seq) == (0x80000009, 0x0E, 1)  # ESME_RINVPASWD
    assert [(b.system_id, b.ok) for b in smsc.binds] == [("esme1", False)]


def test_enquire_link_is_answered_and_unbind_acknowledged(smsc: SmscSim) -> None:
    with socket.create_connection(("127.0.0.1", smsc.port), timeout=5) as sock:
        sock.sendall(_pdu(0x09, 1, _bind_body(b"esme1", b"pw")))
        command_id, status, _, body = _read(sock)
        assert (command_id, status) == (0x80000009, 0) and body.startswith(b"PAYCELLSIM\0")
        sock.sendall(_pdu(0x15, 7))
        assert _read(sock)[:3] == (0x80000015, 0, 7)
        sock.sendall(_pdu(0x06, 8))
        assert _read(sock)[:3] == (0x80000006, 0, 8)
    assert smsc.enquire_links == 1 and smsc.unbinds == 1


def test_an_independent_client_submits_gets_receipts_and_texts(smsc: SmscSim) -> None:
    async def scenario() -> None:
        client = smpp34.Client("127.0.0.1", smsc.port, "esme1", "pw", bind_type="TRX")
        session = await client.connect()
        resp = await session.submit_sm("8613800138000", "您好".encode("utf-16-be"),
                                       source_addr="10690000", dest_addr_ton=1,
                                       dest_addr_npi=1, data_coding=DC_UCS2,
                                       registered_delivery=1)
        assert resp.is_success and resp.message_id
        receipt = await asyncio.wait_for(session.next(), 10)
        assert isinstance(receipt, smpp34.DeliverSmEvent) and receipt.esm_class == 0x04
        tlvs = {t.tag: t.value for t in receipt.tlvs}
        parsed = parse_receipt(receipt.short_message.decode("ascii"), tlvs)
        assert parsed is not None and parsed.message_id == resp.message_id
        assert parsed.outcome == "delivered"

        assert await asyncio.to_thread(smsc.inject_mo, "+8613800138001", "BAL")
        mo = await asyncio.wait_for(session.next(), 10)
        assert isinstance(mo, smpp34.DeliverSmEvent)
        assert (mo.source_addr, mo.source_addr_ton, mo.short_message) == \
            ("8613800138001", 1, b"BAL")
        assert await asyncio.to_thread(smsc.send_enquire_link)

        assert await asyncio.to_thread(smsc.drop_connections) == 1
        assert isinstance(await asyncio.wait_for(session.next(), 10), smpp34.Disconnected)

    asyncio.run(scenario())
    assert [(t.msisdn, t.text) for t in smsc.texts] == [("+8613800138000", "您好")]


# -- short_message rules (byte values from GSM 03.38 / 03.40) -----------------------------

def test_gsm_default_alphabet_with_extension_characters() -> None:
    [part] = encode_text("Pay €5 {ok} @home")
    assert part.data_coding == DC_DEFAULT and part.esm_class == 0
    assert part.short_message == b"Pay \x1be5 \x1b(ok\x1b) \x00home"
    assert decode_short_message(part.short_message, DC_DEFAULT, 0).text == "Pay €5 {ok} @home"


def test_chinese_goes_in_ucs2() -> None:
    [part] = encode_text("中文")
    assert (part.data_coding, part.short_message) == (DC_UCS2, b"\x4e\x2d\x65\x87")


@pytest.mark.parametrize(("text", "sizes"), [
    ("a" * 160, [160]),
    ("a" * 161, [6 + 153, 6 + 8]),
    ("€" * 80, [160]),  # 160 septets: one message
    ("€" * 81, [6 + 152, 6 + 10]),  # an escape pair is never cut
    ("中" * 70, [140]),
    ("中" * 71, [6 + 134, 6 + 8]),
    ("😀" * 35 + "中", [6 + 132, 6 + 10]),  # nor a surrogate pair
])
def test_long_texts_split_with_concatenation_headers(text: str, sizes: list[int]) -> None:
    parts = encode_text(text, ref=42)
    assert [len(p.short_message) for p in parts] == sizes
    if len(parts) > 1:
        assert all(p.esm_class == ESM_UDHI for p in parts)
        assert [p.short_message[:6] for p in parts] == [
            bytes([5, 0, 3, 42, len(parts), i]) for i in range(1, len(parts) + 1)]
    joined = "".join(decode_short_message(p.short_message, p.data_coding, p.esm_class).text
                     for p in parts)
    assert joined == text


def test_receipt_text_and_tlvs() -> None:
    text = format_receipt("A1B2", "UNDELIV", "005")
    assert parse_receipt(text) is not None
    parsed = parse_receipt(text)
    assert parsed is not None and (parsed.message_id, parsed.outcome, parsed.err) == \
        ("A1B2", "failed", "005")
    # The TLVs win over the text: receipted_message_id and message_state (2: DELIVERED).
    both = parse_receipt(text, {0x001E: b"XYZ\0", 0x0427: b"\x02"})
    assert both is not None and (both.message_id, both.outcome) == ("XYZ", "delivered")
    enroute = parse_receipt("id:9 stat:ENROUTE err:000")
    assert enroute is not None and enroute.outcome is None
    assert parse_receipt("hello") is None
