"""Operator authentication: a shared API key in the ``X-API-Key`` header.

A stop-gap until the back office brings operator logins and roles; it protects every
operator endpoint now so that none is ever published without authentication.
"""

from __future__ import annotations

import hmac

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from paycell.errors import UnauthorizedError

API_KEY_HEADER = "X-API-Key"

# auto_error=False: a missing key is our own problem+json error, not FastAPI's 403.
_api_key = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                        description="The operator API key (PAYCELL_OPERATOR_API_KEY).")


class AuthenticationRequiredError(UnauthorizedError):
    code = "authentication_required"


class InvalidApiKeyError(UnauthorizedError):
    code = "invalid_api_key"
    title = "Invalid API key"


def check_operator_key(given: str | None, expected: str) -> None:
    """Accept ``given`` only if it equals ``expected``, in constant time.

    Raises :class:`AuthenticationRequiredError` when no key was sent and
    :class:`InvalidApiKeyError` when it does not match. Never raises anything else, whatever
    bytes the header holds (both sides are compared as UTF-8 bytes).
    """
    if not given:
        raise AuthenticationRequiredError(f"send the operator API key in {API_KEY_HEADER}")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise InvalidApiKeyError("the API key is not valid")


def require_operator(request: Request, api_key: str | None = Security(_api_key)) -> None:
    """FastAPI dependency: the caller is an operator, or the request ends with a 401."""
    check_operator_key(api_key, request.app.state.settings.operator_api_key)
