"""A lean request path for the hot payment routes: FastAPI's work, without its machinery.

Profiled under the HTTP benchmark, FastAPI's per-request dependency solving took about a
fifth of the API's CPU: for every request and every dependency it walks the tree again,
builds cache keys, asks whether scopes are in use, checks whether each callable is a
coroutine or a generator, and opens two exit stacks; the work the dependencies themselves do
(the session lookup, the signature check) is a small part of it.

``@lean`` marks an endpoint. ``compile_route`` turns the route FastAPI built for it into a
plan, once: the dependencies in FastAPI's order, each already classified, and the route's own
parameter and body fields. Per request the plan does what FastAPI's handler does, in the same
order and with FastAPI's own functions for the parts whose output callers see (the body's
content-type rule and JSON decoding, ``request_params_to_args``,
``request_body_to_args``, ``serialize_response``), so the answers, errors included, are the
same byte for byte (``tests/api/test_lean.py`` compares them). A dependency tree the plan
does not cover (a generator, security scopes, a ``Response`` or ``BackgroundTasks``
parameter, a body in a dependency) is refused when the app is built, and the app's
``dependency_overrides``, when there are any, send every request the normal way.
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi.dependencies.models import (
    Dependant,
    _is_async_gen_callable,
    _is_coroutine_callable,
    _is_gen_callable,
)
from fastapi.dependencies.utils import request_body_to_args, request_params_to_args
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.routing import serialize_response
from fastapi.utils import is_body_allowed_for_status_code
from pydantic_core import PydanticUndefined
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

F = TypeVar("F", bound=Callable[..., Any])
_MARK = "__paycell_lean__"


def lean(endpoint: F) -> F:
    """Mark a route's endpoint for the lean path (put it under the route decorator)."""
    setattr(endpoint, _MARK, True)
    return endpoint


def is_lean(endpoint: object) -> bool:
    return bool(getattr(endpoint, _MARK, False))


class UnsupportedRoute(TypeError):
    """The route uses a FastAPI feature the lean path does not reproduce."""


@dataclass(slots=True)
class _Step:
    """One dependency (or the endpoint): how to gather its arguments and call it."""

    call: Callable[..., Any]
    name: str | None
    is_coroutine: bool
    use_cache: bool
    subs: list[_Step]
    path: list[Any]
    query: list[Any]
    header: list[Any]
    cookie: list[Any]
    body: list[Any]
    request_names: tuple[str, ...]  # parameters that take the Request (or HTTPConnection)


def _step(dep: Dependant, *, top: bool) -> _Step:
    call = dep.call
    if call is None:
        raise UnsupportedRoute("a dependency without a callable")
    if _is_gen_callable(call) or _is_async_gen_callable(call):
        raise UnsupportedRoute(f"{call!r} is a generator dependency")
    if (dep.websocket_param_name or dep.response_param_name or dep.background_tasks_param_name
            or dep.security_scopes_param_name or dep.own_oauth_scopes
            or dep.concurrency is not None):
        raise UnsupportedRoute(f"{call!r} uses a FastAPI feature the lean path leaves out")
    if dep.body_params and not top:
        raise UnsupportedRoute(f"{call!r}: a dependency that reads the body")
    return _Step(call, dep.name, _is_coroutine_callable(call), dep.use_cache,
                 [_step(d, top=False) for d in dep.dependencies],
                 dep.path_params, dep.query_params, dep.header_params, dep.cookie_params,
                 dep.body_params,
                 tuple(n for n in (dep.http_connection_param_name, dep.request_param_name) if n))


async def _solve(step: _Step, request: Request, body: Any, cache: dict[Any, Any],
                 embed: bool) -> tuple[dict[str, Any], list[Any]]:
    """``solve_dependencies`` for a plan: the same order, the same caching, the same errors."""
    values: dict[str, Any] = {}
    errors: list[Any] = []
    for sub in step.subs:
        sub_values, sub_errors = await _solve(sub, request, body, cache, embed)
        if sub_errors:
            errors.extend(sub_errors)
            continue
        if sub.use_cache and sub.call in cache:
            solved = cache[sub.call]
        elif sub.is_coroutine:
            solved = await sub.call(**sub_values)
        else:
            solved = await run_in_threadpool(sub.call, **sub_values)
        if sub.name is not None:
            values[sub.name] = solved
        cache.setdefault(sub.call, solved)
    for fields, source in ((step.path, "path_params"), (step.query, "query_params"),
                           (step.header, "headers"), (step.cookie, "cookies")):
        if fields:
            got, errs = request_params_to_args(fields, getattr(request, source))
            values.update(got)
            errors += errs
    if step.body:
        got, errs = await request_body_to_args(body_fields=step.body, received_body=body,
                                               embed_body_fields=embed)
        values.update(got)
        errors.extend(errs)
    for name in step.request_names:
        values[name] = request
    return values, errors


async def _read_body(request: Request, strict: bool) -> Any:
    """The body as FastAPI's handler reads it: JSON when the content type says so."""
    raw = await request.body()
    if not raw:
        return PydanticUndefined
    content_type = request.headers.get("content-type")
    wants_json = False
    if not content_type:
        wants_json = not strict
    elif content_type == "application/json":
        wants_json = True
    else:
        message = email.message.Message()
        message["content-type"] = content_type
        if message.get_content_maintype() == "application":
            subtype = message.get_content_subtype()
            wants_json = subtype == "json" or subtype.endswith("+json")
    if not wants_json:
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", e.pos), "msg": "JSON decode error",
              "input": {}, "ctx": {"error": e.msg}}], body=e.doc) from e
    except Exception as e:  # not UTF-8, say: FastAPI answers 400
        raise HTTPException(status_code=400, detail="There was an error parsing the body"
                            ) from e


Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


def compile_route(route: Any) -> Handler:
    """The lean ASGI handler for ``route`` (an APIRoute, or FastAPI's view of one included
    under a prefix). Raises :class:`UnsupportedRoute` for what it does not reproduce."""
    dependant: Dependant = route.dependant
    plan = _step(dependant, top=True)
    body_field = route.body_field
    if body_field is not None and type(body_field.field_info).__name__ in {"Form", "File"}:
        raise UnsupportedRoute("a form body")
    if getattr(route, "is_json_stream", False) or getattr(route, "stream_item_field", None):
        raise UnsupportedRoute("a streaming response")
    if getattr(route, "max_body_size", None) is not None:
        raise UnsupportedRoute("a body size limit")
    strict = _value(getattr(route, "strict_content_type", True))
    embed: bool = route._embed_body_fields
    status_code: int | None = route.status_code
    response_field = route.response_field
    response_class = route.response_class
    dump_json = response_field is not None and _is_default(response_class)
    actual_class = _value(response_class)
    if not ((isinstance(actual_class, type) and issubclass(actual_class, JSONResponse))
            or (not _is_default(response_class) and issubclass(actual_class, Response))):
        raise UnsupportedRoute(f"response class {actual_class!r}")
    options = {k: getattr(route, f"response_model_{k}") for k in (
        "include", "exclude", "by_alias", "exclude_unset", "exclude_defaults", "exclude_none")}

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        body = await _read_body(request, strict) if body_field is not None else PydanticUndefined
        values, errors = await _solve(plan, request, body, {}, embed)
        if errors:
            raise RequestValidationError(
                errors, body=None if body is PydanticUndefined else body)
        if plan.is_coroutine:
            raw = await plan.call(**values)
        else:
            raw = await run_in_threadpool(plan.call, **values)
        if isinstance(raw, Response):
            response = raw
        else:
            content = await serialize_response(
                field=response_field, response_content=raw, **options,
                is_coroutine=plan.is_coroutine, dump_json=dump_json)
            args: dict[str, Any] = {} if status_code is None else {"status_code": status_code}
            response = (Response(content=content, media_type="application/json", **args)
                        if dump_json else actual_class(content, **args))
            if not is_body_allowed_for_status_code(response.status_code):
                response.body = b""
        await response(scope, receive, send)

    return handle


def _is_default(value: Any) -> bool:
    return type(value).__name__ == "DefaultPlaceholder"


def _value(value: Any) -> Any:
    return value.value if _is_default(value) else value
