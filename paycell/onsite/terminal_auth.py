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

from sqlalchemy.exc import IntegrityError

from paycell.api.replay import NONCE_PRUNE_S, Every
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


def authenticate(ctx: Context, *, method: str, target: str, terminal_id: str | None,
                 timestamp: str | None, nonce: str | None, mac: str | None, body: bytes
                 ) -> Terminal:
    """The active terminal that MACed this message, or a 401 (``terminal_auth_required``,
    ``terminal_unknown``, ``terminal_mac_invalid``, ``terminal_timestamp_stale``,
    ``terminal_nonce_replayed``) / 403 ``terminal_not_active``. The nonce is remembered only
    for a message whose MAC is right."""
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
    row = terminal_row(ctx, terminal_id)  # the terminal and its sealed key in one read
    if row is None:
        raise TerminalUnknownError(f"no terminal {terminal_id}")
    term = to_terminal(row)
    key = unseal(ctx.settings.secret_key, KEY_PURPOSE, row.key_sealed)
    expected = message_mac(key, method, target, term.terminal_id, timestamp, nonce, body)
    if not hmac.compare_digest(expected, mac.upper()):
        raise TerminalMacInvalidError("the MAC does not match the message")
    window = ctx.settings.signature_window_s
    now_us = ctx.clock.now_us()
    ts = int(timestamp)
    if abs(now_us // 1_000_000 - ts) > window:
        raise TerminalTimestampStaleError(f"the timestamp is more than {window}s off our clock",
                                          server_time=now_us // 1_000_000)
    try:
        with ctx.engine.begin() as conn:
            if _prune_nonces.due(now_us):  # expired ones are only clutter (paycell.api.replay)
                conn.execute(nonces.delete().where(nonces.c.expires_at < now_us))
            conn.execute(_REMEMBER, {"terminal_pk": term.id, "nonce": nonce,
                                     "expires_at": (ts + window + 1) * 1_000_000})
    except IntegrityError:
        raise TerminalNonceReplayedError("this nonce was used already") from None
    if term.state != "active":
        raise TerminalNotActiveError(f"terminal {term.terminal_id} is {term.state}",
                                     state=term.state)
    return term
