"""PIN rules, pure: what a PIN may be, and what a wrong one costs. No I/O, no clock reads.

A PIN is six ASCII digits. Refused as trivial: one digit repeated (000000), straight runs
up or down, wrapping round (123456, 654321, 789012), a repeated pair or triple (121212,
123123), and the MSISDN's last six digits, forwards or backwards.

Stored PINs (and SMS codes) are a PIN verification value, like the card schemes' PVV: a
keyed hash, HMAC-SHA256 under a key derived from ``settings.secret_key`` (which lives in the
environment, not in the database) over a random 16-byte salt and the PIN, stored as
``pvv1$<salt hex>$<mac hex>``. Why not a slow password hash: a six-digit PIN has 10^6
values, so no work factor a payment can afford (argon2id's defaults cost about 120 ms of
CPU per check, the platform's largest per-payment cost) stops an offline search of a
stolen table; what stops it is a key the table does not contain. Online guessing is
stopped by the lockout after ``pin_max_failures`` wrong tries. Hashes made earlier with
argon2id (``$argon2id$...``) still verify, and :func:`needs_rehash` tells the caller to
replace them on the next right PIN.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

PIN_LENGTH = 6
PVV_PREFIX = "pvv1$"
_argon2 = PasswordHasher()  # verifies hashes made before PVVs; makes none


def _digits(pin: str) -> bool:
    return len(pin) == PIN_LENGTH and all("0" <= ch <= "9" for ch in pin)


def _run(pin: str, step: int) -> bool:
    return all((int(b) - int(a)) % 10 == step % 10 for a, b in itertools.pairwise(pin))


def trivial_reason(pin: str, msisdn: str | None = None) -> str | None:
    """Why ``pin`` is refused, or None if it is acceptable."""
    if not _digits(pin):
        return "a PIN is exactly six digits"
    if len(set(pin)) == 1:
        return "a PIN may not repeat one digit"
    if _run(pin, 1) or _run(pin, -1):
        return "a PIN may not be a run of digits"
    if pin == pin[:2] * 3 or pin == pin[:3] * 2:
        return "a PIN may not repeat a pattern"
    tail = "".join(ch for ch in (msisdn or "") if ch.isdigit())[-PIN_LENGTH:]
    if tail and pin in (tail, tail[::-1]):
        return "a PIN may not be the end of the phone number"
    return None


def pin_key(secret_key: str) -> bytes:
    """The PIN verification key: derived from the platform secret, used for nothing else."""
    from paycell.crypto import derived_key

    return derived_key(secret_key, "pin-verification")


def _mac(key: bytes, salt: bytes, pin: str) -> str:
    return hmac.new(key, salt + pin.encode(), hashlib.sha256).hexdigest()


def hash_pin(pin: str, key: bytes) -> str:
    """The PIN verification value of ``pin`` under ``key`` (see the module docstring)."""
    salt = secrets.token_bytes(16)
    return f"{PVV_PREFIX}{salt.hex()}${_mac(key, salt, pin)}"


def pin_matches(pin_hash: str, pin: str, key: bytes) -> bool:
    """Constant-time check of ``pin`` against its stored value; False for malformed input."""
    if not _digits(pin):
        return False
    if pin_hash.startswith(PVV_PREFIX):
        parts = pin_hash[len(PVV_PREFIX):].split("$")
        try:
            salt = bytes.fromhex(parts[0]) if len(parts) == 2 else b""
        except ValueError:
            return False
        return len(salt) == 16 and hmac.compare_digest(_mac(key, salt, pin), parts[1])
    try:
        return _argon2.verify(pin_hash, pin)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(pin_hash: str) -> bool:
    """True for a value made before PVVs (argon2id): store a new one on the next right PIN."""
    return not pin_hash.startswith(PVV_PREFIX)


def burn_time() -> None:
    """Spend what a PIN check costs, for a number without a wallet: the answer's timing then
    does not tell which numbers have one."""
    _mac(b"\0" * 32, b"\0" * 16, "000000")


@dataclass(frozen=True, slots=True)
class PinState:
    failures: int
    locked_until: int | None


def locked(state: PinState, now_us: int) -> bool:
    return state.locked_until is not None and now_us < state.locked_until


def after_failure(state: PinState, now_us: int, max_failures: int, lock_s: int) -> PinState:
    """A wrong PIN: count it; the ``max_failures``-th in a row locks PIN use for ``lock_s``
    and starts the count again (a lock that has run out is forgotten first)."""
    failures = state.failures + 1
    if failures >= max_failures:
        return PinState(0, now_us + lock_s * 1_000_000)
    return PinState(failures, None)


def after_success() -> PinState:
    return PinState(0, None)
