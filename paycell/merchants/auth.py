"""Verifying signed merchant requests; ``current_merchant`` is the FastAPI dependency.

The checks, in order, each failure a 401 problem with its own code:
1. the headers: none at all -> ``authentication_required``; one missing ->
   ``signature_header_missing``; malformed -> ``signature_header_invalid`` (``header`` says
   which);
2. the key id: ``key_unknown``, ``key_revoked``;
3. the timestamp within ``settings.signature_window_s`` of our clock, either way ->
   ``timestamp_stale`` (with ``server_time``);
4. the body's SHA-256 against ``X-Paycell-Content-SHA256`` if sent -> ``digest_mismatch``;
5. the signature -> ``signature_mismatch``;
6. the nonce, recorded only for a correctly signed request: the primary key
   (key id, nonce) refuses a second use while the timestamp could still pass ->
   ``nonce_replayed``, in this process or any other.
Then a merchant that is not active gets 403 ``merchant_not_active``.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fastapi import Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy import Connection, delete
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from paycell.api.replay import NONCE_PRUNE_S, Every, remember, remembered, spend_nonces
from paycell.context import Context
from paycell.errors import PaycellError
from paycell.merchants import signing as s
from paycell.merchants.credentials import keys_now, lookup_key
from paycell.merchants.errors import (
    DigestMismatchError,
    KeyRevokedError,
    KeyUnknownError,
    MerchantAuthenticationRequiredError,
    MerchantNotActiveError,
    NonceReplayedError,
    SignatureHeaderInvalidError,
    SignatureHeaderMissingError,
    SignatureMismatchError,
    TimestampStaleError,
)
from paycell.merchants.model import Credential, Merchant
from paycell.merchants.tables import nonces

_FORMATS = {
    s.KEY_ID: (s.KEY_ID_RE, "a key id as issued (mk_...)"),
    s.TIMESTAMP: (s.TIMESTAMP_RE, "unix seconds, digits only"),
    s.NONCE: (s.NONCE_RE, "8 to 64 of A-Z a-z 0-9 _ -"),
    s.SIGNATURE: (s.SIGNATURE_RE, "hex: 64 digits (HMAC-SHA256) or 128 (Ed25519)"),
    s.DIGEST: (s.DIGEST_RE, "hex SHA-256 of the body, 64 digits"),
}

_key_id = APIKeyHeader(
    name=s.KEY_ID, scheme_name="MerchantSignature", auto_error=False,
    description="Signed request: X-Paycell-Key-Id, X-Paycell-Timestamp, X-Paycell-Nonce, "
                "X-Paycell-Signature (see docs/merchant-api.md).")


def _headers(headers: Mapping[str, str]) -> dict[str, str]:
    if not headers.get(s.KEY_ID):
        raise MerchantAuthenticationRequiredError(
            "sign the request: send X-Paycell-Key-Id, X-Paycell-Timestamp, X-Paycell-Nonce "
            "and X-Paycell-Signature", header=s.KEY_ID)
    found: dict[str, str] = {}
    for name in (*s.REQUIRED, s.DIGEST):
        value = headers.get(name)
        if not value:
            if name == s.DIGEST:
                continue
            raise SignatureHeaderMissingError(f"the {name} header is missing", header=name)
        regex, what = _FORMATS[name]
        if not regex.fullmatch(value):
            raise SignatureHeaderInvalidError(f"{name} is not valid: {what}", header=name)
        found[name] = value
    return found


def verify_request(ctx: Context, method: str, target: str, headers: Mapping[str, str],
                   body: bytes) -> Merchant:
    """The active merchant that signed this request, after every check above. On success
    the nonce is remembered (one short write); on a refusal nothing is written."""
    h = _headers(headers)
    found = lookup_key(ctx, h[s.KEY_ID])
    signed = _checked(ctx, h, found, method, target, body)
    _remember_nonce(ctx, signed.key_id, signed.nonce, signed.expires_at, ctx.clock.now_us())
    return _active(signed.merchant)


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A merchant request whose key, timestamp, digest and signature are right; its nonce
    not yet spent, and its key and merchant as last read (:func:`admit` reads them again)."""

    key_id: str
    nonce: str
    expires_at: int  # when the nonce may be forgotten (µs)
    merchant: Merchant


def verify_signature(ctx: Context, method: str, target: str, headers: Mapping[str, str],
                     body: bytes) -> SignedRequest:
    """:func:`verify_request`'s checks but the nonce, the key's revocation and the
    merchant's state, which :func:`admit` checks for a whole batch in its transaction. A key
    id's secret (or public key) and merchant never change, so they are remembered per
    process; a key read for the first time is read here (call it in a thread then:
    :func:`known` says whether it will be)."""
    h = _headers(headers)
    key_id = h[s.KEY_ID]
    keys = remembered(ctx, "merchant keys")
    found = keys.get(key_id)
    if found is None:
        found = lookup_key(ctx, key_id)
        if found is not None:
            remember(keys, key_id, found)
    return _checked(ctx, h, found, method, target, body)


def admit(conn: Connection, signed: Sequence[SignedRequest], now_us: int
          ) -> list[Merchant | PaycellError]:
    """Spend the requests' nonces in ``conn``'s transaction and read their keys and
    merchants as they are now: per request its merchant, or the refusal (a replayed nonce, a
    key revoked since it was remembered, a merchant no longer active)."""
    replayed = spend_nonces(conn, nonces, "key_id",
                            [(r.key_id, r.nonce, r.expires_at) for r in signed], now_us, _prune)
    now = keys_now(conn, [r.key_id for r in signed])
    out: list[Merchant | PaycellError] = []
    for i, r in enumerate(signed):
        try:
            if r.key_id not in now:  # keys are revoked, not deleted; but never a 500
                raise KeyUnknownError(f"no API key {r.key_id!r}", key_id=r.key_id)
            cred, merchant = now[r.key_id]
            if not cred.active_at(now_us):
                raise KeyRevokedError(f"the API key {r.key_id!r} was revoked", key_id=r.key_id)
            if i in replayed:
                raise NonceReplayedError("this nonce was used already; every request needs a "
                                         "new one", nonce=r.nonce)
            out.append(_active(merchant))
        except PaycellError as exc:
            out.append(exc)
    return out


def admit_one(ctx: Context, signed: SignedRequest) -> Merchant:
    """:func:`admit` for one request outside a batch: its merchant, or the refusal raised."""
    with ctx.engine.begin() as conn:
        [m] = admit(conn, [signed], ctx.clock.now_us())
    if isinstance(m, PaycellError):
        raise m
    return m


def known(ctx: Context, key_id: str | None) -> bool:
    """Whether :func:`verify_signature` can check this key's signature without reading."""
    return key_id is not None and key_id in remembered(ctx, "merchant keys")


def _checked(ctx: Context, h: dict[str, str],
             found: tuple[Credential, str | None, Merchant] | None, method: str, target: str,
             body: bytes) -> SignedRequest:
    """Checks 2 to 5 of the module docstring on the key as found."""
    key_id = h[s.KEY_ID]
    if found is None:
        raise KeyUnknownError(f"no API key {key_id!r}", key_id=key_id)
    cred, secret, merchant = found
    now_us = ctx.clock.now_us()
    if not cred.active_at(now_us):
        raise KeyRevokedError(f"the API key {key_id!r} was revoked", key_id=key_id)
    window = ctx.settings.signature_window_s
    ts = int(h[s.TIMESTAMP])
    now_s = now_us // 1_000_000
    if abs(now_s - ts) > window:
        raise TimestampStaleError(
            f"the timestamp is {abs(now_s - ts)}s {'behind' if ts < now_s else 'ahead of'} "
            f"our clock; at most {window}s either way", server_time=now_s, timestamp=ts,
            window_s=window)
    digest = s.body_digest(body)
    if s.DIGEST in h and h[s.DIGEST].lower() != digest:
        raise DigestMismatchError("X-Paycell-Content-SHA256 is not the SHA-256 of the body "
                                  "received", received_digest=digest)
    canonical = s.canonical_string(method, target, h[s.TIMESTAMP], h[s.NONCE], digest)
    signature = h[s.SIGNATURE].lower()
    if cred.kind == "hmac":
        assert secret is not None
        ok = hmac.compare_digest(s.hmac_signature(secret, canonical), signature)
    else:
        assert cred.public_key is not None
        ok = s.verify_ed25519(cred.public_key, canonical, signature)
    if not ok:
        raise SignatureMismatchError(
            "the signature does not match the request; `paycell merchants check-signature` "
            "shows the text that is signed")
    return SignedRequest(key_id, h[s.NONCE], (ts + window + 1) * 1_000_000, merchant)


def _active(merchant: Merchant) -> Merchant:
    if merchant.state != "active":
        raise MerchantNotActiveError(f"merchant {merchant.code} is {merchant.state}",
                                     state=merchant.state)
    return merchant


_prune = Every(NONCE_PRUNE_S)


_REMEMBER = nonces.insert()  # built once: every signed request runs it


def _remember_nonce(ctx: Context, key_id: str, nonce: str, expires_at: int,
                    now_us: int) -> None:
    """Insert (key id, nonce); the primary key refuses a replay. Now and then expired
    nonces are dropped in the same transaction (``paycell.api.replay``)."""
    try:
        with ctx.engine.begin() as conn:
            if _prune.due(now_us):
                conn.execute(delete(nonces).where(nonces.c.expires_at < now_us))
            conn.execute(_REMEMBER, {"key_id": key_id, "nonce": nonce,
                                     "expires_at": expires_at})
    except IntegrityError:
        raise NonceReplayedError("this nonce was used already; every request needs a new one",
                                 nonce=nonce) from None


def request_target(request: Request) -> str:
    """The path and query exactly as the client sent them (percent-encoding included)."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if raw else request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1")
    return s.request_target(path, query)


async def signed_request(request: Request, key_id: str | None = Security(_key_id)
                         ) -> SignedRequest:
    """FastAPI dependency for the batched endpoints: the request's signature checked (in
    the event loop when its key is remembered), its nonce, key and merchant left to the
    batch (:func:`admit`). Sets ``request.state.merchant_key_id``."""
    body = await request.body()
    ctx: Context = request.app.state.ctx
    args = (ctx, request.method, request_target(request), request.headers, body)
    signed = (verify_signature(*args) if known(ctx, key_id)
              else await run_in_threadpool(verify_signature, *args))
    request.state.merchant_key_id = key_id
    return signed


async def current_merchant(request: Request,
                           key_id: str | None = Security(_key_id)) -> Merchant:
    """FastAPI dependency: the active merchant that signed this request (401/403 problems
    otherwise, see the module docstring). Sets ``request.state.merchant_key_id``."""
    body = await request.body()
    ctx: Context = request.app.state.ctx
    merchant = await run_in_threadpool(verify_request, ctx, request.method,
                                       request_target(request), request.headers, body)
    request.state.merchant_key_id = key_id
    return merchant
