"""Every error leaves the API as RFC 9457 problem+json with a stable machine ``code``.

Business errors (:class:`paycell.errors.PaycellError`) are mapped by class to a status;
request validation, unknown routes and wrong methods get problems of their own; anything
else is a logged 500 ``internal_error`` that tells the caller nothing about the internals.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from paycell.errors import (
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    PaycellError,
    UnauthorizedError,
)
from paycell.money import MoneyError

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://paycell.dev/errors/"
_RESERVED = frozenset({"type", "title", "status", "detail", "code", "instance"})


class ServiceUnavailableError(PaycellError):
    """A dependency (the database) does not answer; the caller may retry later."""

    code = "service_unavailable"


# Most specific first: a class inherits the status of the first base it matches.
STATUS_BY_CLASS: tuple[tuple[type[PaycellError], int], ...] = (
    (NotFoundError, 404),
    (ConflictError, 409),
    (InvalidRequestError, 422),
    (UnauthorizedError, 401),
    (ForbiddenError, 403),
    (ServiceUnavailableError, 503),
)


class Problem(BaseModel):
    """RFC 9457 problem details, plus ``code``; errors may add fields of their own."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["https://paycell.dev/errors/account_not_found"])
    title: str = Field(examples=["Account not found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["account 42 does not exist"])
    code: str = Field(description="stable machine code", examples=["account_not_found"])
    instance: str = Field(description="the request path", examples=["/v1/ledger/accounts/42"])


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting problem+json for these statuses."""
    return {
        s: {"model": Problem, "description": HTTPStatus(s).phrase,
            "content": {PROBLEM_MEDIA_TYPE: {}}}
        for s in statuses
    }


def status_for(exc: PaycellError) -> int:
    """The HTTP status of a business error: by class, 400 when no class matches."""
    for cls, status in STATUS_BY_CLASS:
        if isinstance(exc, cls):
            return status
    return 400


def title_for(code: str) -> str:
    return code.replace("_", " ").capitalize()


def problem_body(
    path: str, status: int, code: str, detail: str, *, title: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The problem+json document; ``extra`` fields never override the standard ones."""
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": title or title_for(code),
        "status": status,
        "detail": detail,
        "code": code,
        "instance": path,
    }
    for key, value in (extra or {}).items():
        if key not in _RESERVED:
            body[key] = jsonable_encoder(value)
    return body


def problem_of(path: str, exc: PaycellError) -> tuple[int, str]:
    """A business error's status and problem+json text, as :func:`problem` would send it
    (for answers made away from a request: the API's batched use cases)."""
    status = status_for(exc)
    body = problem_body(path, status, exc.code, exc.message, extra=exc.detail)
    return status, bytes(JSONResponse(body).body).decode()


def problem(
    request: Request, status: int, code: str, detail: str, *,
    title: str | None = None, extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response; ``extra`` fields never override the standard ones."""
    body = problem_body(request.url.path, status, code, detail, title=title, extra=extra)
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": 'APIKey header="X-API-Key"'}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE,
                        headers=headers)


async def _paycell_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PaycellError)
    return problem(request, status_for(exc), exc.code, exc.message,
                   title=getattr(exc, "title", None), extra=exc.detail)


async def _money_error(request: Request, exc: Exception) -> JSONResponse:
    # Amounts are parsed at the edge: a malformed one is bad input, never a 500.
    return problem(request, 422, getattr(exc, "code", "invalid_amount"), str(exc))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_describe(err) for err in exc.errors()]
    first = errors[0] if errors else None
    detail = (f"{first['field'] or first['in']}: {first['message']}" if first
              else "the request is not valid")
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more)"
    return problem(request, 422, "validation_error", detail, extra={"errors": errors})


def _describe(err: Any) -> dict[str, str]:
    """One validation error as ``in`` (path, query, header, body), ``field`` and ``message``."""
    loc = [str(p) for p in err.get("loc", ())]
    where = loc[0] if loc else "body"
    return {"in": where, "field": ".".join(loc[1:]), "message": str(err.get("msg", "invalid"))}


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    code = _HTTP_CODES.get(status, phrase.lower().replace(" ", "_").replace("-", "_"))
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    if status == 404:
        detail = detail or f"nothing at {request.url.path}"
    elif status == 405:
        detail = detail or f"{request.method} is not allowed on {request.url.path}"
    return problem(request, status, code, detail or phrase, title=phrase,
                   headers=dict(exc.headers or {}))


async def _unstorable_value(request: Request, exc: Exception) -> JSONResponse:
    """A value passed validation but the database cannot hold it (an integer beyond 64
    bits, a NUL character in text on PostgreSQL). The transaction it was in rolled back,
    so nothing changed: the caller gets a 422 it can act on. Each one is a missing bound
    in a request schema, so it is logged."""
    log.warning("unstorable value on %s %s: %s", request.method, request.url.path, exc)
    return problem(request, 422, "value_unstorable",
                   "a value in the request is out of range (integers are at most 2^63-1) "
                   "or holds a character that cannot be stored (NUL)")


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """The database went away (restarted, or its connection died) or refused for the moment.
    The transaction did not commit, or the client cannot know that it did: it retries with
    the same Idempotency-Key, which answers with what happened."""
    assert isinstance(exc, DBAPIError)
    if not (exc.connection_invalidated or isinstance(exc, OperationalError)):
        return await _internal_error(request, exc)
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                str(exc.orig).strip() or type(exc.orig).__name__)
    return problem(request, 503, "database_unavailable",
                   "the database is unavailable for a moment: retry the request with the"
                   " same Idempotency-Key", headers={"Retry-After": "1"})


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(request, 500, "internal_error",
                   "something went wrong on our side; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    """Make every error the app can produce a problem+json response, and say so in the
    OpenAPI document."""
    app.add_exception_handler(PaycellError, _paycell_error)
    app.add_exception_handler(MoneyError, _money_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OverflowError, _unstorable_value)
    app.add_exception_handler(DataError, _unstorable_value)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _internal_error)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _problem_media_type(generate())
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def _problem_media_type(schema: dict[str, Any]) -> None:
    """FastAPI documents a response ``model`` as application/json: where a response is
    declared problem+json (see :func:`problem_responses`), move the schema there."""
    for operations in schema.get("paths", {}).values():
        for op in operations.values():
            for response in op.get("responses", {}).values():
                content = response.get("content", {})
                if PROBLEM_MEDIA_TYPE in content and "application/json" in content:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
