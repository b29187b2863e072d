"""Operator authentication: an API key in the ``X-API-Key`` header.

Each operator has a key of its own (``paycell operators add``), stored hashed; the settings
key (``PAYCELL_OPERATOR_API_KEY``) stays valid and signs in as the operator ``root``.
``require_operator`` returns the :class:`~paycell.operators.model.Operator`, so routes can
check roles and record who did what; routes that only need "an operator" keep using it as
``dependencies=[Depends(require_operator)]``.

Auditors read only: ``require_operator`` refuses them (403 ``operator_role_forbidden``) on
every method but GET, HEAD and OPTIONS, before the route runs, so no operator route can
forget the rule. Finer rules (admin only) stay with the routes.
"""

from __future__ import annotations

import hmac

from fastapi import Request, Security
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from paycell.context import Context
from paycell.errors import UnauthorizedError
from paycell.operators.model import Operator
from paycell.operators.service import authenticate_key, require_role, root_operator

API_KEY_HEADER = "X-API-Key"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# auto_error=False: a missing key is our own problem+json error, not FastAPI's 403.
_api_key = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                        description="An operator's API key (or PAYCELL_OPERATOR_API_KEY, "
                                    "which signs in as the operator `root`).")


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


def _authenticate(ctx: Context, key: str, state: object) -> Operator:
    expected = ctx.settings.operator_api_key
    if expected and hmac.compare_digest(key.encode(), expected.encode()):
        # root never changes once made: look it up once per app, not per request
        root: Operator | None = getattr(state, "root_operator", None)
        if root is None:
            root = root_operator(ctx)
            state.root_operator = root  # type: ignore[attr-defined]
        return root
    found = authenticate_key(ctx.engine, ctx.settings.secret_key, key)
    if found is None:
        raise InvalidApiKeyError("the API key is not valid")
    return found


async def require_operator(request: Request,
                           api_key: str | None = Security(_api_key)) -> Operator:
    """FastAPI dependency: the operator whose key came with the request, or a 401
    (``authentication_required``: no key; ``invalid_api_key``: unknown or disabled); a 403
    ``operator_role_forbidden`` when an auditor asks for anything but a read."""
    if not api_key:
        raise AuthenticationRequiredError(f"send the operator API key in {API_KEY_HEADER}")
    ctx: Context = request.app.state.ctx
    op = await run_in_threadpool(_authenticate, ctx, api_key, request.app.state)
    if request.method not in READ_METHODS:
        require_role(op)  # auditors read only
    request.state.operator = op
    return op
