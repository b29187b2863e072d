"""What goes into an SMPP ``short_message``: encodings, long texts, delivery receipts.

Pure functions, no I/O; shared by the SMPP client (``smpp.py``) and the loopback SMSC.

- **Encoding**: the GSM 03.38 default alphabet (``data_coding`` 0, one septet per octet,
  unpacked, as SMPP carries it) when every character of the text is in it (the extension
  table's ``^{}[]~|€\\`` count as two septets); otherwise UCS2 (``data_coding`` 8,
  UTF-16 big-endian), which covers Chinese.
- **Long texts** are split into parts concatenated with a user data header (``esm_class``
  0x40, UDH ``05 00 03 ref total seq``): 160 septets or 70 UCS2 units fit in one message;
  split, each part holds 153 septets or 67 units, never cutting an escape pair or a
  surrogate pair. Every part is its own ``submit_sm`` with its own SMSC message id.
- **Delivery receipts** use the text format of SMPP 3.4 appendix B
  (``id:… sub:… dlvrd:… submit date:… done date:… stat:… err:… text:…``) plus the
  ``receipted_message_id`` / ``message_state`` TLVs; the TLVs win when both are present.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DC_DEFAULT = 0x00  # SMSC default alphabet: GSM 03.38 here
DC_LATIN1 = 0x03
DC_UCS2 = 0x08
ESM_UDHI = 0x40  # short_message starts with a user data header
ESM_RECEIPT = 0x04  # deliver_sm is an SMSC delivery receipt
ESM_TYPE_MASK = 0x3C

GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C,
                 "~": 0x3D, "]": 0x3E, "|": 0x40, "€": 0x65}
_ESC = 0x1B
_BASIC_CODE = {ch: i for i, ch in enumerate(GSM_BASIC) if i != _ESC}
_EXT_CHAR = {code: ch for ch, code in GSM_EXTENSION.items()}

GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67
MAX_PARTS = 255


@dataclass(frozen=True, slots=True)
class Part:
    """One ``submit_sm`` (or ``deliver_sm``) worth of text."""
    short_message: bytes
    data_coding: int
    esm_class: int


def is_gsm(text: str) -> bool:
    """True if ``text`` can be written in the GSM default alphabet."""
    return all(ch in _BASIC_CODE or ch in GSM_EXTENSION for ch in text)


def _gsm_units(text: str) -> list[bytes]:
    """One entry per character: its septet(s), each septet one octet."""
    return [bytes([_BASIC_CODE[ch]]) if ch in _BASIC_CODE else bytes([_ESC, GSM_EXTENSION[ch]])
            for ch in text]


def _ucs2_units(text: str) -> list[bytes]:
    """One entry per character: its UTF-16BE code unit(s) (two for a surrogate pair)."""
    return [ch.encode("utf-16-be") for ch in text]


def _pack(units: list[bytes], limit: int, unit_size: int) -> list[bytes]:
    """Group characters into chunks of at most ``limit`` units, never splitting one."""
    chunks: list[bytes] = []
    current, used = bytearray(), 0
    for u in units:
        size = len(u) // unit_size
        if used + size > limit:
            chunks.append(bytes(current))
            current, used = bytearray(), 0
        current += u
        used += size
    chunks.append(bytes(current))
    return chunks


def encode_text(text: str, ref: int = 0) -> list[Part]:
    """``text`` as the parts to submit. ``ref`` (0-255) is the concatenation reference, the
    same for every part of one text. Raises ValueError past 255 parts."""
    if is_gsm(text):
        units, unit_size, single, per_part, dc = _gsm_units(text), 1, GSM_SINGLE, GSM_PART, \
            DC_DEFAULT
    else:
        units, unit_size, single, per_part, dc = _ucs2_units(text), 2, UCS2_SINGLE, UCS2_PART, \
            DC_UCS2
    if sum(len(u) for u in units) // unit_size <= single:
        return [Part(b"".join(units), dc, 0)]
    chunks = _pack(units, per_part, unit_size)
    if len(chunks) > MAX_PARTS:
        raise ValueError(f"text too long: {len(chunks)} parts")
    total = len(chunks)
    return [Part(bytes([5, 0, 3, ref & 0xFF, total, seq]) + chunk, dc, ESM_UDHI)
            for seq, chunk in enumerate(chunks, start=1)]


def decode_gsm(data: bytes) -> str:
    out: list[str] = []
    escaped = False
    for b in data:
        if escaped:
            out.append(_EXT_CHAR.get(b, " "))
            escaped = False
        elif b == _ESC:
            escaped = True
        else:
            out.append(GSM_BASIC[b & 0x7F])
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Decoded:
    """A received short_message: its text and, for a part of a long text, where it goes."""
    text: str
    concat: tuple[int, int, int] | None = None  # (reference, total, sequence)


def _split_udh(data: bytes) -> tuple[tuple[int, int, int] | None, bytes]:
    if not data:
        return None, data
    length = data[0]
    header, rest = data[1:1 + length], data[1 + length:]
    i = 0
    while i + 2 <= len(header):
        iei, ie_len = header[i], header[i + 1]
        ie = header[i + 2:i + 2 + ie_len]
        if iei == 0x00 and ie_len == 3:
            return (ie[0], ie[1], ie[2]), rest
        if iei == 0x08 and ie_len == 4:
            return (int.from_bytes(ie[:2], "big"), ie[2], ie[3]), rest
        i += 2 + ie_len
    return None, rest


def decode_short_message(data: bytes, data_coding: int, esm_class: int) -> Decoded:
    """The text of a short_message (GSM default, Latin-1, UCS2 or ASCII/IA5), without its
    user data header."""
    concat = None
    if esm_class & ESM_UDHI:
        concat, data = _split_udh(data)
    if data_coding == DC_UCS2:
        text = data.decode("utf-16-be", errors="replace")
    elif data_coding == DC_LATIN1:
        text = data.decode("latin-1")
    elif data_coding == DC_DEFAULT:
        text = decode_gsm(data)
    else:
        text = data.decode("ascii", errors="replace")
    return Decoded(text, concat)


# -- delivery receipts -------------------------------------------------------------------

# stat values of the receipt text, and message_state TLV values (SMPP 3.4 5.2.28).
FINAL_STATES = {"DELIVRD": "delivered", "EXPIRED": "failed", "DELETED": "failed",
                "UNDELIV": "failed", "REJECTD": "failed", "UNKNOWN": "failed"}
MESSAGE_STATE = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV",
                 6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD"}
STATE_CODE = {name: code for code, name in MESSAGE_STATE.items()}
TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427

_RECEIPT_FIELD = re.compile(r"(id|stat|err):(\S*)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Receipt:
    message_id: str
    stat: str  # DELIVRD, UNDELIV, ...
    err: str = ""

    @property
    def outcome(self) -> str | None:
        """``delivered``, ``failed``, or None for an intermediate state (ENROUTE, ACCEPTD)."""
        return FINAL_STATES.get(self.stat)


def format_receipt(message_id: str, stat: str, err: str = "000", *, date: str = "0000000000",
                   text: str = "") -> str:
    dlvrd = "001" if stat == "DELIVRD" else "000"
    return (f"id:{message_id} sub:001 dlvrd:{dlvrd} submit date:{date} done date:{date} "
            f"stat:{stat} err:{err} text:{text[:20]}")


def parse_receipt(text: str, tlvs: dict[int, bytes] | None = None) -> Receipt | None:
    """The receipt in a deliver_sm, or None if it carries none we can read."""
    fields = {k.lower(): v for k, v in _RECEIPT_FIELD.findall(text)}
    tlvs = tlvs or {}
    message_id = fields.get("id", "")
    if TLV_RECEIPTED_MESSAGE_ID in tlvs:
        message_id = tlvs[TLV_RECEIPTED_MESSAGE_ID].rstrip(b"\0").decode("ascii", "replace")
    stat = fields.get("stat", "").upper()
    state = tlvs.get(TLV_MESSAGE_STATE)
    if state:
        stat = MESSAGE_STATE.get(state[0], stat or "UNKNOWN")
    if not message_id or not stat:
        return None
    return Receipt(message_id, stat, fields.get("err", ""))
