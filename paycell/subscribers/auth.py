"""The wallet app's authentication: ``Authorization: Bearer <access token>``.

``current_subscriber`` is the FastAPI dependency every wallet endpoint uses; it answers 401
problems ``authentication_required`` (no token), ``token_invalid`` (unknown, revoked, or the
wallet closed) and ``token_expired`` (refresh it). Each subscriber sees only their own data:
endpoints take the subscriber from the token, never from the URL.

The tokens of requests that arrive together are looked up together, with one read, on the
process's ``sessions`` desk (``api/desk.py``): each request still gets exactly the answer
``tokens.authenticate`` gives it alone.
"""

from __future__ import annotations

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from paycell.api.desk import Lane, desk_of
from paycell.context import Context
from paycell.subscribers.errors import TokenMissingError
from paycell.subscribers.service import Subscriber
from paycell.subscribers.tokens import SessionInfo, authenticate_many

_bearer = HTTPBearer(auto_error=False, description="an access token from /v1/wallet/login")


async def current_session(
    request: Request, creds: HTTPAuthorizationCredentials | None = Security(_bearer),
) -> SessionInfo:
    """FastAPI dependency: the caller's session (the subscriber and the session id)."""
    if creds is None or not creds.credentials:
        raise TokenMissingError("send an access token: Authorization: Bearer <token>")
    ctx: Context = request.app.state.ctx
    lane: Lane[str, SessionInfo] = Lane(
        "sessions", lambda tokens: authenticate_many(ctx, tokens), keys=_no_keys)
    info = await desk_of(request.app.state, "sessions").submit(lane, creds.credentials)
    request.state.session_id = info.session_id
    return info


def _no_keys(_token: str) -> tuple[()]:
    return ()  # lookups of one token may share a batch: nothing is written


async def current_subscriber(
    request: Request, creds: HTTPAuthorizationCredentials | None = Security(_bearer),
) -> Subscriber:
    """FastAPI dependency: the subscriber whose access token came with the request."""
    return (await current_session(request, creds)).subscriber
