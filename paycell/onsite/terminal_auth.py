"""The MAC every POS terminal message carries, checked with replay protection.

A terminal MACs six lines (method, target, terminal id, unix timestamp, nonce, the body's
SHA-256) with its key (ISO 9797-1 retail MAC). The platform accepts a timestamp within
``settings.signature_window_s`` of its clock and each nonce once (``onsite_terminal_nonces``,
remembered only for a message whose MAC is right). Answers are 401 problems with stable
codes, or 403 ``terminal_not_active``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from paycell.api import replay
from paycell.api.replay import NONCE_PRUNE_S, Every, remember, remembered
from paycell.context import Context
from paycell.crypto import unseal
from paycell.errors import UnauthorizedError
from paycell.onsite import emv
from paycell.onsite.terminal_tables import nonces
from paycell.onsite.terminals import (
    KEY_PURPOSE,
    Terminal,
    TerminalNotActiveError,
    terminal_row,
    to_terminal,
)


class TerminalAuthRequiredError(UnauthorizedError):
    code = "terminal_auth_required"


class TerminalUnknownError(UnauthorizedError):
    code = "terminal_unknown"


class TerminalMacInvalidError(UnauthorizedError):
    code = "terminal_mac_invalid"


class TerminalTimestampStaleError(UnauthorizedError):
    code = "terminal_timestamp_stale"


class TerminalNonceReplayedError(UnauthorizedError):
    code = "terminal_nonce_replayed"


def canonical_message(method: str, target: str, terminal_id: str, timestamp: str, nonce: str,
                      body: bytes) -> bytes:
    """What a terminal MACs: six lines, no trailing newline, the body as its SHA-256 hex."""
    return "\n".join((method.upper(), target, terminal_id, timestamp, nonce,
                      hashlib.sha256(body).hexdigest())).encode()


def message_mac(key: bytes, method: str, target: str, terminal_id: str, timestamp: str,
                nonce: str, body: bytes) -> str:
    """hex (upper case) of the retail MAC over :func:`canonical_message`."""
    return emv.retail_mac(key, canonical_message(method, target, terminal_id, timestamp, nonce,
                                                 body)).hex().upper()


_prune_nonces = Every(NONCE_PRUNE_S)
_REMEMBER = nonces.insert()  # built once: every terminal message runs it


@dataclass(frozen=True, slots=True)
class Signed:
    """A terminal message whose MAC and timestamp are right; its nonce not yet spent."""

    terminal: Terminal  # as last read: its state and batch may have moved since
    nonce: str
    expires_at: int  # when the nonce may be forgotten (µs)


def authenticate(ctx: Context, *, method: str, target: str, terminal_id: str | None,
                 timestamp: str | None, nonce: str | None, mac: str | None, body: bytes
                 ) -> Terminal:
    """The active terminal that MACed this message, or a 401 (``terminal_auth_required``,
    ``terminal_unknown``, ``terminal_mac_invalid``, ``terminal_timestamp_stale``,
    ``terminal_nonce_replayed``) / 403 ``terminal_not_active``. The nonce is remembered only
    for a message whose MAC is right."""
    row = terminal_row(ctx, _checked_id(terminal_id, timestamp, nonce, mac))
    if row is None:
        raise TerminalUnknownError(f"no terminal {terminal_id}")
    key = unseal(ctx.settings.secret_key, KEY_PURPOSE, row.key_sealed)
    signed = _verify(ctx, to_terminal(row), key, method, target, timestamp, nonce, mac, body)
    now_us = ctx.clock.now_us()
    term = signed.terminal
    try:
        with ctx.engine.begin() as conn:
            if _prune_nonces.due(now_us):  # expired ones are only clutter (paycell.api.replay)
                conn.execute(nonces.delete().where(nonces.c.expires_at < now_us))
            conn.execute(_REMEMBER, {"terminal_pk": term.id, "nonce": signed.nonce,
                                     "expires_at": signed.expires_at})
    except IntegrityError:
        raise TerminalNonceReplayedError("this nonce was used already") from None
    if term.state != "active":
        raise TerminalNotActiveError(f"terminal {term.terminal_id} is {term.state}",
                                     state=term.state)
    return term


def verify_signed(ctx: Context, *, method: str, target: str, terminal_id: str | None,
                  timestamp: str | None, nonce: str | None, mac: str | None, body: bytes
                  ) -> Signed:
    """:func:`authenticate`'s checks but the nonce and the terminal's state, which the
    caller checks in its own transaction (:func:`spend_nonces`, the terminal's locked row):
    the batched authorisation does both for a whole batch. A terminal's key and store never
    change, so they are remembered per process; its state is not."""
    tid = _checked_id(terminal_id, timestamp, nonce, mac)
    keys = remembered(ctx, "terminals")
    known: tuple[Terminal, bytes] | None = keys.get(tid)
    if known is None:
        row = terminal_row(ctx, tid)
        if row is None:
            raise TerminalUnknownError(f"no terminal {terminal_id}")
        known = to_terminal(row), unseal(ctx.settings.secret_key, KEY_PURPOSE, row.key_sealed)
        remember(keys, tid, known)
    return _verify(ctx, *known, method, target, timestamp, nonce, mac, body)


def spend_nonces(conn: Connection, signed: Sequence[Signed], now_us: int) -> set[int]:
    """Remember the messages' nonces in the caller's transaction; the indexes of those used
    before (replays: refuse them with :class:`TerminalNonceReplayedError`)."""
    return replay.spend_nonces(conn, nonces, "terminal_pk",
                               [(s.terminal.id, s.nonce, s.expires_at) for s in signed],
                               now_us, _prune_nonces)


def known(ctx: Context, terminal_id: str | None) -> bool:
    """Whether :func:`verify_signed` can check this terminal's MAC without reading it."""
    return (terminal_id is not None
            and terminal_id.strip().upper() in remembered(ctx, "terminals"))


def _checked_id(terminal_id: str | None, timestamp: str | None, nonce: str | None,
                mac: str | None) -> str:
    if not (terminal_id or timestamp or nonce or mac):
        from paycell.api.auth import AuthenticationRequiredError

        raise AuthenticationRequiredError("send the terminal's X-Terminal-Id, "
                                          "X-Terminal-Timestamp, X-Terminal-Nonce and "
                                          "X-Terminal-MAC")
    if not (terminal_id and timestamp and nonce and mac):
        raise TerminalAuthRequiredError(
            "send X-Terminal-Id, X-Terminal-Timestamp, X-Terminal-Nonce and X-Terminal-MAC")
    if not (timestamp.isdigit() and len(timestamp) <= 12 and 8 <= len(nonce) <= 64
            and nonce.replace("-", "").replace("_", "").isalnum()):
        raise TerminalAuthRequiredError("the timestamp is unix seconds and the nonce 8 to 64 "
                                        "letters, digits, - or _")
    return terminal_id.strip().upper()


def _verify(ctx: Context, term: Terminal, key: bytes, method: str, target: str,
            timestamp: str | None, nonce: str | None, mac: str | None, body: bytes) -> Signed:
    assert timestamp is not None and nonce is not None and mac is not None
    expected = message_mac(key, method, target, term.terminal_id, timestamp, nonce, body)
    if not hmac.compare_digest(expected, mac.upper()):
        raise TerminalMacInvalidError("the MAC does not match the message")
    window = ctx.settings.signature_window_s
    now_us = ctx.clock.now_us()
    ts = int(timestamp)
    if abs(now_us // 1_000_000 - ts) > window:
        raise TerminalTimestampStaleError(f"the timestamp is more than {window}s off our clock",
                                          server_time=now_us // 1_000_000)
    return Signed(term, nonce, (ts + window + 1) * 1_000_000)
