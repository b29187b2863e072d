"""OTA secured packets (pure: no I/O) and ``SimApplet``, a simulated SIM that obeys them.

The packets follow the shape of ETSI TS 102 225 (a counter the card checks, a cryptographic
checksum, a proof-of-receipt), simplified to what paycell needs:

command (platform -> SIM), sent as the SMS text ``OTA1 <base64>``::

    ver(1)=01 | counter(5) | job id(8) | command(1) | length(2) | data (AES-128-CTR) | MAC(8)

proof-of-receipt (SIM -> platform), sent back as ``OTAR1 <base64>``::

    ver(1)=01 | counter(5) | job id(8) | status(1) | applet state(1) | MAC(8)

Keys: each SIM has its own pair (KIc for the data, KID for the MACs), derived from the OTA
master key with HKDF-SHA256 (salt ``paycell-ota-v1``, info ``sim|<ICCID>``, 32 bytes split
16 + 16); see :func:`derive_sim_keys`. MACs are HMAC-SHA256 truncated to 8 bytes; the PoR
MAC is over ``b"POR" || fields`` so a command's MAC can never pass for a PoR's. The data of
a command is encrypted with AES-128-CTR under KIc, the initial counter block being
``b"OTA-CMD" || counter(5) || 0000`` — unique, since a SIM accepts each counter once.

The SIM accepts a command only if its MAC verifies and its counter is higher than the last
one it accepted (a replay or an old packet is refused: ``counter_low``). Commands are
idempotent on the card (locking a locked applet is "ok"), so a retry with a new counter
after a lost PoR is harmless.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

CMD_PREFIX = "OTA1 "
POR_PREFIX = "OTAR1 "
VERSION = 1
MAC_LEN = 8
MAX_COUNTER = 2**40 - 1

COMMANDS = {"install": 1, "personalise": 2, "lock": 3, "unlock": 4, "delete": 5}
COMMAND_NAMES = {v: k for k, v in COMMANDS.items()}
STATUSES = {"ok": 0, "counter_low": 1, "mac_failed": 2, "bad_state": 3, "malformed": 4}
STATUS_NAMES = {v: k for k, v in STATUSES.items()}
APPLET_STATES = {"absent": 0, "installed": 1, "personalised": 2, "locked": 3}
APPLET_STATE_NAMES = {v: k for k, v in APPLET_STATES.items()}

_HEAD = struct.Struct(">B5sQBH")  # version, counter, job id, command, data length
_POR = struct.Struct(">B5sQBB")  # version, counter, job id, status, applet state


class PacketFormatError(ValueError):
    """Not a packet of this format (wrong prefix, base64, length or version)."""


@dataclass(frozen=True)
class SimKeys:
    kic: bytes  # encrypts command data
    kid: bytes  # MACs commands and proofs-of-receipt

    def __repr__(self) -> str:  # never print keys
        return "SimKeys(<hidden>)"


def derive_sim_keys(ota_master_key: bytes, iccid: str) -> SimKeys:
    """The SIM's own OTA keys: HKDF-SHA256 of the master key, per ICCID (see module doc)."""
    okm = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"paycell-ota-v1",
               info=b"sim|" + iccid.encode()).derive(ota_master_key)
    return SimKeys(kic=okm[:16], kid=okm[16:])


@dataclass(frozen=True)
class Command:
    counter: int
    job_id: int
    command: str
    data: bytes = b""  # in clear


@dataclass(frozen=True)
class Por:
    counter: int
    job_id: int
    status: str
    applet_state: str


def _mac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()[:MAC_LEN]


def _ctr(kic: bytes, counter: int, data: bytes) -> bytes:
    block = b"OTA-CMD" + counter.to_bytes(5, "big") + b"\0\0\0\0"
    c = Cipher(algorithms.AES(kic), modes.CTR(block)).encryptor()
    return c.update(data) + c.finalize()


def _unwrap(text: str, prefix: str) -> bytes:
    if not text.startswith(prefix):
        raise PacketFormatError(f"not starting with {prefix.strip()!r}")
    try:
        return base64.b64decode(text[len(prefix):].strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PacketFormatError("not base64") from exc


def encode_command(keys: SimKeys, cmd: Command) -> str:
    """The SMS text carrying ``cmd``, its data encrypted and the whole MACed."""
    if not 0 < cmd.counter <= MAX_COUNTER:
        raise ValueError("counter out of range")
    enc = _ctr(keys.kic, cmd.counter, cmd.data)
    body = _HEAD.pack(VERSION, cmd.counter.to_bytes(5, "big"), cmd.job_id,
                      COMMANDS[cmd.command], len(enc)) + enc
    return CMD_PREFIX + base64.b64encode(body + _mac(keys.kid, body)).decode()


def parse_command_header(text: str) -> tuple[Command, bytes, bytes]:
    """The command's fields (data still encrypted), the MACed bytes and the MAC."""
    raw = _unwrap(text, CMD_PREFIX)
    if len(raw) < _HEAD.size + MAC_LEN:
        raise PacketFormatError("too short")
    ver, ctr, job_id, code, length = _HEAD.unpack_from(raw)
    if ver != VERSION or len(raw) != _HEAD.size + length + MAC_LEN or code not in COMMAND_NAMES:
        raise PacketFormatError("bad version, length or command")
    body = raw[:-MAC_LEN]
    return (Command(int.from_bytes(ctr, "big"), job_id, COMMAND_NAMES[code],
                    raw[_HEAD.size:-MAC_LEN]), body, raw[-MAC_LEN:])


def encode_por(keys: SimKeys, por: Por) -> str:
    body = _POR.pack(VERSION, por.counter.to_bytes(5, "big"), por.job_id,
                     STATUSES[por.status], APPLET_STATES[por.applet_state])
    return POR_PREFIX + base64.b64encode(body + _mac(keys.kid, b"POR" + body)).decode()


def parse_por(text: str) -> tuple[Por, bytes, bytes]:
    """The PoR's fields, the MACed bytes and the MAC (not verified: see :func:`verify_por`)."""
    raw = _unwrap(text.strip(), POR_PREFIX)
    if len(raw) != _POR.size + MAC_LEN:
        raise PacketFormatError("bad length")
    ver, ctr, job_id, status, state = _POR.unpack_from(raw)
    if ver != VERSION or status not in STATUS_NAMES or state not in APPLET_STATE_NAMES:
        raise PacketFormatError("bad version, status or state")
    return (Por(int.from_bytes(ctr, "big"), job_id, STATUS_NAMES[status],
                APPLET_STATE_NAMES[state]), raw[:_POR.size], raw[_POR.size:])


def verify_por(keys: SimKeys, body: bytes, mac: bytes) -> bool:
    return hmac.compare_digest(_mac(keys.kid, b"POR" + body), mac)


def personalisation_data(pan: str, psn: str, card_key: bytes) -> bytes:
    """What a personalise command carries (encrypted on the air): PAN, PSN, the card key."""
    return bytes([len(pan)]) + pan.encode() + bytes([len(psn)]) + psn.encode() + card_key


def _read_personalisation(data: bytes) -> tuple[str, str, bytes]:
    n = data[0]
    pan = data[1:1 + n].decode("ascii")
    m = data[1 + n]
    psn = data[2 + n:2 + n + m].decode("ascii")
    key = data[2 + n + m:]
    if len(key) != 16 or not pan.isdigit() or not psn.isdigit():
        raise ValueError("bad personalisation data")
    return pan, psn, key


@dataclass
class SimApplet:
    """A SIM with the payment applet's life cycle, as the OTA platform drives it.

    ``keys`` were loaded at the SIM factory (:func:`derive_sim_keys`); ``counter`` is the
    highest counter accepted. ``receive`` takes an ``OTA1`` text and returns the ``OTAR1``
    proof-of-receipt the handset would text back (None if the text is not a packet)."""

    iccid: str
    keys: SimKeys
    counter: int = 0
    state: str = "absent"
    pan: str | None = None
    psn: str | None = None
    card_key: bytes | None = field(default=None, repr=False)
    log: list[str] = field(default_factory=list)  # the statuses it answered, oldest first

    @classmethod
    def provision(cls, ota_master_key: bytes, iccid: str) -> SimApplet:
        """A blank SIM from the factory, its OTA keys loaded."""
        return cls(iccid, derive_sim_keys(ota_master_key, iccid))

    def receive(self, text: str) -> str | None:
        try:
            cmd, body, mac = parse_command_header(text)
        except PacketFormatError:
            return None
        if not hmac.compare_digest(_mac(self.keys.kid, body), mac):
            return self._answer(cmd, "mac_failed")
        if cmd.counter <= self.counter:
            return self._answer(cmd, "counter_low")
        self.counter = cmd.counter  # accepted: this counter is spent whatever follows
        try:
            status = self._apply(cmd.command, _ctr(self.keys.kic, cmd.counter, cmd.data))
        except (ValueError, IndexError, UnicodeDecodeError):
            status = "malformed"
        return self._answer(cmd, status)

    def _answer(self, cmd: Command, status: str) -> str:
        self.log.append(status)
        return encode_por(self.keys, Por(cmd.counter, cmd.job_id, status, self.state))

    def _apply(self, command: str, data: bytes) -> str:
        present = self.state != "absent"
        if command == "install":
            if not present:
                self.state = "installed"
            return "ok"
        if command == "delete":
            self.state, self.pan, self.psn, self.card_key = "absent", None, None, None
            return "ok"
        if not present:
            return "bad_state"
        if command == "personalise":
            if self.state == "locked":
                return "bad_state"
            self.pan, self.psn, self.card_key = _read_personalisation(data)
            self.state = "personalised"
        elif command == "lock":
            self.state = "locked"
        elif command == "unlock" and self.state == "locked":
            self.state = "personalised" if self.card_key else "installed"
        return "ok"
