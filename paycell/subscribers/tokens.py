"""Sessions: MSISDN + PIN -> an access token (15 min) and a refresh token (30 days).

Tokens are 32 random bytes (URL-safe base64, with a readable prefix); only their SHA-256
is stored, so a database copy lets nobody in. A refresh rotates both tokens; presenting a
refresh token that was already rotated away (someone kept a copy) revokes the session.
Logout revokes the session; a PIN change or reset and closing the wallet revoke them all.

Retries: login and refresh take the request's Idempotency-Key. A retry with the same key
(the answer was lost) issues a fresh pair *for the same session* and kills the pair that
was lost, so a retry never opens a second session and no token is ever stored in clear
(the generic idempotency store would keep the response, tokens included).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ARRAY, Connection, String, any_, bindparam, select, update
from sqlalchemy.exc import IntegrityError

from paycell.api.idempotency import IdempotencyKeyReusedError, check_key
from paycell.bulk import select_rows
from paycell.context import Context
from paycell.db import reading_each
from paycell.subscribers import pins
from paycell.subscribers.errors import (
    CredentialsInvalidError,
    PinInvalidError,
    SubscriberClosedError,
    TokenExpiredError,
    TokenInvalidError,
)
from paycell.subscribers.service import (
    Subscriber,
    find_by_msisdn,
    subscriber_of,
    verify_pin,
)
from paycell.subscribers.tables import sessions, subscribers

ACCESS_PREFIX = "pca_"
REFRESH_PREFIX = "pcr_"


@dataclass(frozen=True)
class TokenPair:
    session_id: int
    subscriber_id: int
    access_token: str
    refresh_token: str
    access_expires_at: int
    refresh_expires_at: int


@dataclass(frozen=True)
class SessionInfo:
    session_id: int
    subscriber: Subscriber


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _key_hash(kind: str, scope: object, key: str) -> str:
    return hashlib.sha256(f"{kind}:{scope}:{check_key(key)}".encode()).hexdigest()


def _issue(conn: Connection, ctx: Context, session_id: int | None, subscriber_id: int,
           **values: Any) -> TokenPair:
    """New tokens: a new session row (``session_id`` None) or the given session's rotated."""
    now, s = ctx.clock.now_us(), ctx.settings
    access = ACCESS_PREFIX + secrets.token_urlsafe(32)
    refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
    fields = dict(access_hash=hash_token(access), refresh_hash=hash_token(refresh),
                  access_expires_at=now + s.access_token_ttl_s * 1_000_000,
                  refresh_expires_at=now + s.refresh_token_ttl_s * 1_000_000, **values)
    if session_id is None:
        session_id = conn.execute(sessions.insert().values(
            subscriber_id=subscriber_id, created_at=now, **fields).returning(sessions.c.id)
        ).scalar_one()
    else:
        conn.execute(update(sessions).where(sessions.c.id == session_id).values(**fields))
    return TokenPair(session_id, subscriber_id, access, refresh, fields["access_expires_at"],
                     fields["refresh_expires_at"])


def login(ctx: Context, msisdn: str, pin: str, idempotency_key: str) -> tuple[TokenPair, bool]:
    """Open a session; returns the tokens and whether this was a retry of an earlier login
    with the same key (then the same session gets a fresh pair).

    Raises CredentialsInvalidError (no open wallet for the number, or a wrong PIN, with
    ``remaining_tries``), PinLockedError while PIN use is locked (a wrong PIN counts, here
    as for payments), InvalidMsisdnError.
    """
    sub = find_by_msisdn(ctx, msisdn)
    if sub is None:
        pins.burn_time()
        raise CredentialsInvalidError("wrong phone number or PIN")
    try:
        verify_pin(ctx, sub.id, pin)
    except PinInvalidError as exc:
        raise CredentialsInvalidError("wrong phone number or PIN", **exc.detail) from None
    except SubscriberClosedError:
        raise CredentialsInvalidError("wrong phone number or PIN") from None
    key = _key_hash("login", sub.id, idempotency_key)
    for _ in range(2):
        try:
            with ctx.engine.begin() as conn:
                row = conn.execute(select(sessions).where(sessions.c.login_key == key)
                                   .with_for_update()).first()
                if row is None:
                    return _issue(conn, ctx, None, sub.id, login_key=key), False
                if row.revoked_at is not None:
                    raise IdempotencyKeyReusedError(
                        "the session this Idempotency-Key opened has ended; use a new key")
                return _issue(conn, ctx, row.id, sub.id), True
        except IntegrityError:
            continue  # the same key raced us: the second round finds its session
    raise IdempotencyKeyReusedError("this Idempotency-Key is in use; use a new key")


def refresh(ctx: Context, refresh_token: str, idempotency_key: str) -> tuple[TokenPair, bool]:
    """Rotate a session's tokens: the refresh token presented dies with the old access token.

    A retry with the same key and the same (now rotated) token rotates again. Any other use
    of a rotated token revokes the session. Raises TokenInvalidError, TokenExpiredError.
    """
    h = hash_token(refresh_token)
    key = _key_hash("refresh", h, idempotency_key)
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        row = conn.execute(select(sessions).where(sessions.c.refresh_hash == h)
                           .with_for_update()).first()
        replayed = False
        if row is None:
            row = conn.execute(select(sessions).where(sessions.c.prev_refresh_hash == h)
                               .with_for_update()).first()
            replayed = True
        if row is not None and conn.execute(select(subscribers.c.state).where(
                subscribers.c.id == row.subscriber_id)).scalar() == "closed":
            row = None
        if row is None or row.revoked_at is not None:
            outcome: str | TokenPair = "invalid"
        elif replayed and row.refresh_key != key:
            conn.execute(update(sessions).where(sessions.c.id == row.id)
                         .values(revoked_at=now, revoked_reason="refresh_reused"))
            outcome = "invalid"
        elif row.refresh_expires_at <= now:
            outcome = "expired"
        else:
            outcome = _issue(conn, ctx, row.id, row.subscriber_id, prev_refresh_hash=h,
                             refresh_key=key)
    if outcome == "expired":
        raise TokenExpiredError("the refresh token has expired: log in again")
    if not isinstance(outcome, TokenPair):
        raise TokenInvalidError("the refresh token is not valid: log in again")
    return outcome, replayed


# Every authenticated wallet request runs this: built once (SQLAlchemy then reuses its
# cache key), the session and its subscriber in one round trip.
_SESSION_COLUMNS = (sessions.c.access_hash, sessions.c.id.label("session_id"),
                    sessions.c.revoked_at, sessions.c.access_expires_at, *subscribers.c)
_SESSIONS = select(*_SESSION_COLUMNS).join_from(
    sessions, subscribers, sessions.c.subscriber_id == subscribers.c.id)
# One statement text whatever the number of tokens: = ANY on PostgreSQL, IN elsewhere.
_SESSIONS_BY_ACCESS_PG = _SESSIONS.where(
    sessions.c.access_hash == any_(bindparam("hashes", type_=ARRAY(String))))
_SESSIONS_BY_ACCESS = _SESSIONS.where(
    sessions.c.access_hash.in_(bindparam("hashes", expanding=True)))


def authenticate(ctx: Context, access_token: str) -> SessionInfo:
    """The session an access token belongs to. Raises TokenInvalidError (unknown, revoked,
    or its wallet closed) or TokenExpiredError."""
    found = authenticate_many(ctx, [access_token])[0]
    if isinstance(found, Exception):
        raise found
    return found


def authenticate_many(ctx: Context, access_tokens: Sequence[str]
                      ) -> list[SessionInfo | TokenInvalidError | TokenExpiredError]:
    """:func:`authenticate` for several tokens with one read: per token, in order, its
    session or the error it would raise. (The API's session desk runs the requests that
    arrive together this way: ``subscribers/auth.py``.)"""
    hashes = [hash_token(t) for t in access_tokens]
    with reading_each(ctx.engine) as conn:
        stmt = (_SESSIONS_BY_ACCESS_PG if conn.dialect.name == "postgresql"
                else _SESSIONS_BY_ACCESS)
        rows = {r.access_hash: r for r in select_rows(conn, stmt,
                                                      {"hashes": sorted(set(hashes))})}
    now = ctx.clock.now_us()
    return [_session(ctx, rows.get(h), now) for h in hashes]


def _session(ctx: Context, row: Any, now: int
             ) -> SessionInfo | TokenInvalidError | TokenExpiredError:
    if row is None or row.revoked_at is not None:
        return TokenInvalidError("the access token is not valid: log in again")
    if row.access_expires_at <= now:
        return TokenExpiredError("the access token has expired: refresh it")
    if row.state == "closed":
        return TokenInvalidError("the access token is not valid: log in again")
    return SessionInfo(row.session_id, subscriber_of(ctx, row))


def logout(ctx: Context, session_id: int) -> None:
    """Revoke one session (both its tokens). Idempotent."""
    with ctx.engine.begin() as conn:
        conn.execute(update(sessions).where(sessions.c.id == session_id,
                                            sessions.c.revoked_at.is_(None))
                     .values(revoked_at=ctx.clock.now_us(), revoked_reason="logout"))
