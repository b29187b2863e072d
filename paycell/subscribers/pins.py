"""PIN rules, pure: what a PIN may be, and what a wrong one costs. No I/O, no clock reads.

A PIN is six ASCII digits. Refused as trivial: one digit repeated (000000), straight runs
up or down, wrapping round (123456, 654321, 789012), a repeated pair or triple (121212,
123123), and the MSISDN's last six digits, forwards or backwards. Hashing is argon2id
(argon2-cffi's defaults, RFC 9106's low-memory profile).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

PIN_LENGTH = 6
_hasher = PasswordHasher()


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


def hash_pin(pin: str) -> str:
    return _hasher.hash(pin)


def pin_matches(pin_hash: str, pin: str) -> bool:
    """Constant-time check of ``pin`` against its argon2 hash; False for any malformed input."""
    if not _digits(pin):
        return False
    try:
        return _hasher.verify(pin_hash, pin)
    except (VerificationError, InvalidHashError):
        return False


_DUMMY: list[str] = []


def burn_time() -> None:
    """Spend what a PIN check costs, for a number without a wallet: the answer's timing then
    does not tell which numbers have one."""
    if not _DUMMY:
        _DUMMY.append(hash_pin("000000"))
    pin_matches(_DUMMY[0], "999999")


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
