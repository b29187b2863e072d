"""Pure decisions for vouchers, agents and P2P: no I/O, no clock reads (times are passed in).

Randomness comes from :mod:`secrets` (the operating system's CSPRNG); hashing from
:mod:`hmac`/:mod:`hashlib`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta, timezone

from paycell.clock import to_us

CARD_NUMBER_DIGITS = 16
SECRET_DIGITS = 18
# Card expiry dates are Beijing dates (China has one time zone and no daylight saving).
CARD_TZ = timezone(timedelta(hours=8), "CST")
DAY_US = 86_400 * 1_000_000

# -- recharge vouchers ----------------------------------------------------------------------


def luhn_check_digit(digits: str) -> str:
    """The Luhn digit that makes ``digits + digit`` pass :func:`luhn_ok`."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # doubled: these sit at odd positions once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def luhn_ok(number: str) -> bool:
    return (number.isascii() and number.isdigit() and len(number) >= 2
            and luhn_check_digit(number[:-1]) == number[-1])


def new_card_number() -> str:
    """16 digits: a non-zero first digit (spreadsheets keep it), 14 random, a Luhn digit.

    The Luhn digit lets a mistyped number be refused as a typo rather than as a guess.
    """
    body = str(secrets.randbelow(9) + 1) + f"{secrets.randbelow(10**14):014d}"
    return body + luhn_check_digit(body)


def new_secret() -> str:
    """18 random decimal digits (about 60 bits): printed under the scratch-off panel."""
    return f"{secrets.randbelow(10**SECRET_DIGITS):0{SECRET_DIGITS}d}"


def hash_secret(key: bytes, card_number: str, secret: str) -> str:
    """HMAC-SHA256 of the card's secret under the server's voucher key, bound to the card."""
    return hmac.new(key, f"{card_number}:{secret}".encode(), hashlib.sha256).hexdigest()


def secret_matches(key: bytes, card_number: str, secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(key, card_number, secret), stored_hash)


_SEPARATORS = re.compile(r"[\s-]")


def clean_digits(text: str) -> str:
    """What a person typed, without the spaces and dashes used to group digits."""
    return _SEPARATORS.sub("", text)


def card_expires_at(expires_on: date) -> int:
    """The first instant (µs, UTC) at which a card printed 'valid until ``expires_on``' is
    expired: midnight at the end of that day, Beijing time."""
    next_day = datetime.combine(expires_on + timedelta(days=1), time(0), tzinfo=CARD_TZ)
    return to_us(next_day.astimezone(UTC))


def card_today(now_us: int) -> date:
    """Today's date in the cards' time zone."""
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=now_us)).astimezone(
        CARD_TZ).date()


def lock_after_failure(
    failures_us: Sequence[int], now_us: int, *, threshold: int, window_us: int, lock_us: int,
) -> int | None:
    """After a wrong secret at ``now_us``: the time until which the wallet may not redeem, or
    None. ``failures_us`` are the wallet's recorded failures, this one included; the lock
    starts when ``threshold`` of them fall within the ``window_us`` ending now."""
    recent = sum(1 for t in failures_us if now_us - window_us < t <= now_us)
    return now_us + lock_us if recent >= threshold else None


def attempts_left(failures_us: Sequence[int], now_us: int, *, threshold: int,
                  window_us: int) -> int:
    recent = sum(1 for t in failures_us if now_us - window_us < t <= now_us)
    return max(0, threshold - recent)


# -- agents ---------------------------------------------------------------------------------
AGENT_KEY_PREFIX = "agk_"
AGENT_CODE = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
# An agent's (or a bank slip's) reference: it becomes part of a ledger transfer id.
REFERENCE = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$"


def new_agent_key() -> str:
    """An agent's API key: 256 random bits, URL-safe, with a recognisable prefix."""
    return AGENT_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_agent_key(key: str) -> str:
    """SHA-256 of the key. The key is 256 random bits, so a fast hash is enough: there is
    nothing to brute-force, and lookups stay an index probe."""
    return hashlib.sha256(key.encode()).hexdigest()


# -- P2P ------------------------------------------------------------------------------------


def p2p_ref(sender_id: int, request_key: str | None) -> str:
    """The business id of a P2P transfer, which names its ledger transfers.

    Derived from the sender and the request's Idempotency-Key, so a retried request (even one
    re-run after a crash) names the same transfer; random when there is no key."""
    if request_key is None:
        return "p" + secrets.token_hex(16)
    return "p" + hashlib.sha256(f"{sender_id}\n{request_key}".encode()).hexdigest()[:32]

