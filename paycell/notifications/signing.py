"""Standard Webhooks signatures (https://www.standardwebhooks.com/) on notifications.

Each delivery carries ``webhook-id`` (the notification id, the same on every retry),
``webhook-timestamp`` (unix seconds of this attempt) and ``webhook-signature``: one or more
space-separated ``v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>``, one per
webhook secret the merchant currently has (two while a rotated secret overlaps).

:func:`verify` is what a merchant runs on what it receives; the same file works on its own
outside paycell (it needs only the standard library and the error base class).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from typing import Any

from paycell.errors import UnauthorizedError

SECRET_PREFIX = "whsec_"
HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"


class WebhookVerificationError(UnauthorizedError):
    """The notification cannot be trusted; ``code`` says why."""

    code = "webhook_invalid"


class WebhookHeaderMissingError(WebhookVerificationError):
    code = "webhook_header_missing"


class WebhookTimestampInvalidError(WebhookVerificationError):
    code = "webhook_timestamp_invalid"


class WebhookTimestampOutOfRangeError(WebhookVerificationError):
    code = "webhook_timestamp_out_of_range"


class WebhookSignatureMismatchError(WebhookVerificationError):
    code = "webhook_signature_mismatch"


class WebhookPayloadInvalidError(WebhookVerificationError):
    code = "webhook_payload_invalid"


def secret_bytes(secret: bytes | str) -> bytes:
    """The HMAC key: bytes as they are; a ``whsec_<base64>`` string decoded; any other
    string as UTF-8."""
    if isinstance(secret, bytes):
        return secret
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a whsec_ secret is base64 after the prefix") from None
    return secret.encode()


def _as_bytes(body: bytes | str) -> bytes:
    return body if isinstance(body, bytes) else body.encode()


def sign(secret: bytes | str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """One signature, ``v1,<base64>``, of ``body`` sent as ``msg_id`` at ``timestamp``."""
    signed = f"{msg_id}.{timestamp}.".encode() + _as_bytes(body)
    mac = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signature_header(secrets: Iterable[bytes | str], msg_id: str, timestamp: int,
                     body: bytes | str) -> str:
    """The ``webhook-signature`` value: one signature per secret, space-separated."""
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets)


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookHeaderMissingError(f"the {name} header is missing")


def verify(secret_or_secrets: bytes | str | Iterable[bytes | str],
           headers: Mapping[str, str], body: bytes | str, now_s: int,
           tolerance_s: int = 300) -> dict[str, Any]:
    """Check a received notification; return its JSON body (``id``, ``event``,
    ``created_at``, ``data``).

    Accepts it if any of its signatures matches any of the given secrets (so a merchant
    rotating its secret may pass both) and its timestamp is within ``tolerance_s`` of
    ``now_s``. Raises :class:`WebhookHeaderMissingError`,
    :class:`WebhookTimestampInvalidError`, :class:`WebhookTimestampOutOfRangeError`,
    :class:`WebhookSignatureMismatchError` or :class:`WebhookPayloadInvalidError` (all
    :class:`WebhookVerificationError`); the body's id equals the ``webhook-id`` header.
    """
    secrets = ([secret_or_secrets] if isinstance(secret_or_secrets, bytes | str)
               else list(secret_or_secrets))
    msg_id = _header(headers, HEADER_ID)
    raw_ts = _header(headers, HEADER_TIMESTAMP)
    given = _header(headers, HEADER_SIGNATURE).split()
    try:
        timestamp = int(raw_ts)
    except ValueError:
        raise WebhookTimestampInvalidError(
            f"{HEADER_TIMESTAMP} is {raw_ts[:40]!r}, not unix seconds") from None
    if abs(now_s - timestamp) > tolerance_s:
        raise WebhookTimestampOutOfRangeError(
            f"{HEADER_TIMESTAMP} {timestamp} is {now_s - timestamp:+d} s from now; "
            f"at most {tolerance_s} s either way is accepted", timestamp=timestamp)
    raw = _as_bytes(body)
    expected = {sign(s, msg_id, timestamp, raw) for s in secrets}
    if not any(hmac.compare_digest(g, e) for g in given for e in expected):
        raise WebhookSignatureMismatchError(
            "no v1 signature in webhook-signature matches the body with your secret(s)")
    try:
        payload = json.loads(raw)
    except ValueError:
        raise WebhookPayloadInvalidError("the body is not JSON") from None
    if not isinstance(payload, dict) or payload.get("id") != msg_id:
        raise WebhookPayloadInvalidError("the body's id is not the webhook-id header")
    return payload
