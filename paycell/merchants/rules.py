"""Pure rules of merchant onboarding: the lifecycle as a transition table, field formats.

No I/O, no clock: the services load, ask here, and write.
"""

from __future__ import annotations

import re

from paycell.config import Settings
from paycell.merchants.errors import MerchantInvalidError, MerchantStateError
from paycell.notifications import guard

# action -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "review": (frozenset({"applied"}), "in_review"),
    "activate": (frozenset({"in_review"}), "active"),
    "reject": (frozenset({"applied", "in_review"}), "rejected"),
    "suspend": (frozenset({"active"}), "suspended"),
    "reinstate": (frozenset({"suspended"}), "active"),
    "terminate": (frozenset({"active", "suspended"}), "terminated"),
}
FINAL = frozenset({"terminated", "rejected"})
# States in which a merchant still exists for business (stores may be added, data read).
LIVE = frozenset({"applied", "in_review", "active", "suspended"})

CATEGORY = re.compile(r"[a-z][a-z0-9_]{1,31}")
SUGGESTED_CATEGORIES = ("food_beverage", "retail", "books_media", "tickets_travel",
                        "digital_goods", "services", "utilities", "education", "other")
STORE_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
PHONE = re.compile(r"\+?[0-9][0-9 -]{5,30}")
ACCOUNT_NUMBER = re.compile(r"[0-9]{8,30}")
URL = re.compile(r"https?://[^\s/$.?#][^\s]*")
MERCHANT_CODE = re.compile(r"M[0-9]{6,12}")
CODE_BASE = 100_000


def next_state(state: str, action: str) -> str:
    """The state ``action`` leads to from ``state``; :class:`MerchantStateError` if the
    action is not allowed there."""
    starts, target = TRANSITIONS[action]
    if state not in starts:
        raise MerchantStateError(f"{action} is not possible for a merchant that is {state}",
                                 state=state, action=action)
    return target


def merchant_code(merchant_id: int) -> str:
    """The public merchant number: ``M`` and 100000 + id (M100001, M100002, ...)."""
    return f"M{CODE_BASE + merchant_id}"


def text(value: str | None, field: str, max_len: int, *, required: bool = True) -> str:
    """``value`` stripped, 1 to ``max_len`` characters (or empty if not ``required``),
    without control characters; :class:`MerchantInvalidError` naming ``field``."""
    value = (value or "").strip()
    if (required and not value) or len(value) > max_len or not value.isprintable():
        raise MerchantInvalidError(
            f"{field} is {'1' if required else '0'} to {max_len} printable characters",
            field=field)
    return value


def pattern(value: str | None, field: str, regex: re.Pattern[str], what: str) -> str:
    value = (value or "").strip()
    if not regex.fullmatch(value):
        raise MerchantInvalidError(f"{field}: {what}", field=field)
    return value


def notify_url(value: str | None, settings: Settings) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > 500 or not URL.fullmatch(value):
        raise MerchantInvalidError("notify_url is an http(s) URL of up to 500 characters",
                                   field="notify_url")
    why = guard.url_refusal(settings, value)
    if why is not None:
        raise MerchantInvalidError(f"notify_url must reach a public address: {why}",
                                   field="notify_url")
    return value
