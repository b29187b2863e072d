"""Signed merchant requests: the computation both sides share, and the client side.

A request carries ``X-Paycell-Key-Id``, ``X-Paycell-Timestamp`` (unix seconds),
``X-Paycell-Nonce`` (8 to 64 of ``A-Z a-z 0-9 _ -``, never reused) and
``X-Paycell-Signature``; optionally ``X-Paycell-Content-SHA256`` (hex SHA-256 of the body),
which lets the server tell a body changed in transit (``digest_mismatch``) from a wrong
signature. The signed text is::

    METHOD \\n path[?query] \\n timestamp \\n nonce \\n hex(sha256(body))

with the path and query exactly as sent (percent-encoding included; no ``?`` when there is
no query) and the SHA-256 of the empty string for an empty body. The signature is the hex
HMAC-SHA256 of that text under the secret (its UTF-8 bytes), or the hex Ed25519 signature
with the key whose public half was registered. See docs/merchant-api.md.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Generator
from dataclasses import dataclass

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from paycell.clock import Clock

KEY_ID = "X-Paycell-Key-Id"
TIMESTAMP = "X-Paycell-Timestamp"
NONCE = "X-Paycell-Nonce"
SIGNATURE = "X-Paycell-Signature"
DIGEST = "X-Paycell-Content-SHA256"
REQUIRED = (KEY_ID, TIMESTAMP, NONCE, SIGNATURE)

KEY_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,40}")
TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")
NONCE_RE = re.compile(r"[A-Za-z0-9_-]{8,64}")
SIGNATURE_RE = re.compile(r"[0-9a-fA-F]{64}|[0-9a-fA-F]{128}")
DIGEST_RE = re.compile(r"[0-9a-fA-F]{64}")

Secret = str | Ed25519PrivateKey


def body_digest(body: bytes | str | None) -> str:
    """hex(sha256(body)); the body as sent, bytes for bytes."""
    data = body.encode() if isinstance(body, str) else (body or b"")
    return hashlib.sha256(data).hexdigest()


def request_target(path: str, query: str | None = None) -> str:
    """``path?query`` as signed: no ``?`` when the query is empty."""
    return f"{path}?{query}" if query else path


def canonical_string(method: str, target: str, timestamp: str, nonce: str,
                     digest: str) -> str:
    """The exact text that is signed (five lines joined by ``\\n``, no trailing newline)."""
    return "\n".join((method.upper(), target, timestamp, nonce, digest.lower()))


def hmac_signature(secret: str, canonical: str) -> str:
    """hex(HMAC-SHA256(secret as UTF-8, canonical as UTF-8))."""
    return hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def ed25519_signature(private_key: Ed25519PrivateKey, canonical: str) -> str:
    return private_key.sign(canonical.encode()).hex()


def ed25519_public_hex(private_key: Ed25519PrivateKey) -> str:
    """The public key to register, hex (32 bytes)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def verify_ed25519(public_key_hex: str, canonical: str, signature_hex: str) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        key.verify(bytes.fromhex(signature_hex), canonical.encode())
    except (InvalidSignature, ValueError):
        return False
    return True


def new_nonce() -> str:
    return secrets.token_hex(16)


def sign(secret: Secret, canonical: str) -> str:
    if isinstance(secret, Ed25519PrivateKey):
        return ed25519_signature(secret, canonical)
    return hmac_signature(secret, canonical)


def sign_headers(key_id: str, secret: Secret, method: str, path: str,
                 body: bytes | str | None, *, timestamp: int | None = None,
                 nonce: str | None = None, send_digest: bool = False) -> dict[str, str]:
    """The headers that sign one request. ``path`` is the request target as sent
    (``/v1/merchant/stores?limit=5``); ``secret`` the HMAC secret or an Ed25519 private key.
    ``timestamp`` defaults to now (unix seconds), ``nonce`` to 32 random hex digits; with
    ``send_digest`` the body's SHA-256 goes along too (``X-Paycell-Content-SHA256``)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or new_nonce()
    digest = body_digest(body)
    headers = {KEY_ID: key_id, TIMESTAMP: ts, NONCE: nonce,
               SIGNATURE: sign(secret, canonical_string(method, path, ts, nonce, digest))}
    if send_digest:
        headers[DIGEST] = digest
    return headers


class MerchantAuth(httpx.Auth):
    """httpx authentication that signs every request::

        httpx.Client(base_url=..., auth=MerchantAuth(key_id, secret))

    ``clock`` (anything with ``now_us()``) replaces the system time, for tests."""

    requires_request_body = True

    def __init__(self, key_id: str, secret: Secret, *, clock: Clock | None = None,
                 send_digest: bool = True) -> None:
        self.key_id, self.secret, self.clock = key_id, secret, clock
        self.send_digest = send_digest

    def headers(self, method: str, target: str, body: bytes) -> dict[str, str]:
        """The headers that sign one request (also for clients other than httpx)."""
        ts = None if self.clock is None else self.clock.now_us() // 1_000_000
        return sign_headers(self.key_id, self.secret, method, target, body, timestamp=ts,
                            send_digest=self.send_digest)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self.headers(request.method,
                                            request.url.raw_path.decode("ascii"),
                                            request.content))
        yield request


@dataclass(frozen=True)
class Explanation:
    """The server's computation for one request, step by step (``check-signature``)."""

    canonical: str
    digest: str
    expected: str | None  # None for an Ed25519 key (no secret to compute it from)
    digest_ok: bool | None  # None when no digest header was sent
    signature_ok: bool
    timestamp_ok: bool | None  # None when no current time was given
    skew_s: int | None


def explain(*, method: str, target: str, timestamp: str, nonce: str, body: bytes,
            signature: str, secret: str | None = None, public_key_hex: str | None = None,
            digest_header: str | None = None, now_s: int | None = None,
            window_s: int = 300) -> Explanation:
    """Recompute what the server computes and say which check passes (no database)."""
    digest = body_digest(body)
    canonical = canonical_string(method, target, timestamp, nonce, digest)
    expected = hmac_signature(secret, canonical) if secret is not None else None
    if expected is not None:
        ok = hmac.compare_digest(expected, signature.lower())
    else:
        ok = public_key_hex is not None and verify_ed25519(public_key_hex, canonical,
                                                           signature)
    skew = None if now_s is None or not timestamp.isdigit() else now_s - int(timestamp)
    return Explanation(
        canonical=canonical, digest=digest, expected=expected,
        digest_ok=None if digest_header is None else digest_header.lower() == digest,
        signature_ok=ok, timestamp_ok=None if skew is None else abs(skew) <= window_s,
        skew_s=skew)
