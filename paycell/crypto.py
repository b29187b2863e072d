"""Secrets the platform must read back (merchant API secrets, webhook secrets) are sealed at
rest with AES-256-GCM under a key derived from ``settings.secret_key`` by HKDF-SHA256.

Each purpose gets its own derived key (``purpose`` is the HKDF info), so a value sealed for
one use cannot be unsealed as another. The sealed form is ``v1.<base64url(nonce|ct|tag)>``.
Hashes, not seals, are for what never needs reading back (PINs, operator keys).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "v1."


class SealBrokenError(Exception):
    """A sealed value does not open under this key and purpose (wrong key or tampered)."""


@lru_cache(maxsize=64)
def _key(secret_key: str, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"paycell-seal",
                info=purpose.encode()).derive(secret_key.encode())


def derived_key(secret_key: str, purpose: str) -> bytes:
    """A 32-byte key for ``purpose`` derived from ``secret_key`` (HKDF-SHA256): each use of
    the secret gets its own key, so none can stand in for another."""
    return _key(secret_key, purpose)


def seal(secret_key: str, purpose: str, plaintext: bytes) -> str:
    """Encrypt and authenticate ``plaintext`` for ``purpose``; a fresh nonce every call."""
    nonce = os.urandom(12)
    ct = AESGCM(_key(secret_key, purpose)).encrypt(nonce, plaintext, purpose.encode())
    return PREFIX + base64.urlsafe_b64encode(nonce + ct).decode().rstrip("=")


def unseal(secret_key: str, purpose: str, sealed: str) -> bytes:
    """The plaintext of :func:`seal`; :class:`SealBrokenError` if it does not open."""
    if not sealed.startswith(PREFIX):
        raise SealBrokenError("not a sealed value")
    raw = sealed[len(PREFIX):]
    try:
        blob = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        return AESGCM(_key(secret_key, purpose)).decrypt(blob[:12], blob[12:], purpose.encode())
    except (InvalidTag, ValueError) as exc:
        raise SealBrokenError("the sealed value does not open with this key") from exc


def token_hash(secret_key: str, token: str) -> str:
    """A keyed hash for high-entropy random tokens (operator keys, codes looked up by value):
    HMAC-SHA256, hex. PINs use a salted keyed hash of their own (subscribers/pins.py)."""
    return hmac.new(secret_key.encode(), token.encode(), hashlib.sha256).hexdigest()
