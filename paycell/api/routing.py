"""Routing by path prefix: a request is matched only against the routes that can take it.

FastAPI matches a request by asking every route in turn; with the 160-odd operations this
app serves that took 0.2-0.4 ms of CPU per request (0.8 ms for a 404, which also tries every
route again with a slash added), more than the rest of the framework together.

``include(app, groups)`` includes the routers and notes the paths each serves;
``index(app, known)``, once the last route or mount is in, puts one ``RouteIndex`` in front
of the app's routes. The index files each route under the literal segments its path starts
with, up to three (``/v1/wallet/payments/{trade_no}/confirm`` under ``v1/wallet/payments``;
a route it cannot read under none, so that it is tried for every path). A request is tried
against the routes filed under a start of its own path, in their original order, and the
first full match handles it. That is what the plain scan would choose, since no other route
can match the path. When
none matches fully (a 404, a 405, a redirect to add a slash) the index steps aside and the
app's own scan, which still holds every route, answers as it always did, and the OpenAPI
document is built from those routes as before.

With ``lean=True`` the index also files, in front of each included router, a ``LeanRoute``
for every operation of that router marked ``@lean`` (``api/lean.py``): it matches exactly as
FastAPI's view of the operation does and answers through the lean request path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Match, Mount, NoMatchFound
from starlette.types import Receive, Scope, Send

from paycell.api.lean import Handler, compile_route, is_lean

Key = tuple[str, ...]
_CHOSEN = "paycell.route"  # the scope key naming the route the index matched
_DEPTH = 3
_MEMO = 4096


Known = dict[int, list[str]]  # id(a top-level route) -> the path templates it serves


def include(app: FastAPI, groups: Iterable[tuple[str, Sequence[APIRouter]]]) -> Known:
    """Include each group's routers under its prefix, in order; returns the paths that each
    route this added to the app serves (FastAPI may add one node per router)."""
    known: Known = {}
    for prefix, routers in groups:
        for router in routers:
            before = len(app.router.routes)
            app.include_router(router, prefix=prefix)
            paths = [prefix + p for p in _templates(router)]
            for route in app.router.routes[before:]:
                known[id(route)] = paths
    return known


def index(app: FastAPI, known: Known, *, lean: bool = False) -> RouteIndex:
    """Put a ``RouteIndex`` over the app's routes as they stand; returns it."""
    routes = [r for r in app.router.routes if not isinstance(r, RouteIndex)]
    indexed: list[BaseRoute] = []
    templates: list[list[str] | None] = []
    for r in routes:
        if lean:
            for fast in _lean_routes(app, r):
                indexed.append(fast)
                templates.append([fast.path])
        indexed.append(r)
        templates.append(known.get(id(r)) or _own_templates(r))
    ix = RouteIndex(indexed, templates)
    app.router.routes[:] = [ix, *routes]
    return ix


class LeanRoute(BaseRoute):
    """An operation marked ``@lean``, in front of the router that serves it: it matches as
    FastAPI's view of the operation does, and answers through ``api/lean.py`` (through the
    router, as before, while the app has dependency overrides)."""

    def __init__(self, app: FastAPI, view: Any, handler: Handler, router: BaseRoute) -> None:
        self.app, self.view, self.handler, self.router = app, view, handler, router
        self.path: str = view.path_format
        self.original: APIRoute = getattr(view, "original_route", view)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = self.view.matches(scope)
        return (Match.FULL, child) if match == Match.FULL else (Match.NONE, {})

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app.dependency_overrides:
            await self.router.handle(scope, receive, send)
            return
        scope["route"] = self.original
        await self.handler(scope, receive, send)


def _lean_routes(app: FastAPI, route: BaseRoute) -> list[LeanRoute]:
    """The ``@lean`` operations ``route`` serves, as FastAPI sees them after inclusion."""
    views: Iterable[Any]
    if isinstance(route, APIRoute):
        views = [route]
    elif hasattr(route, "effective_route_contexts"):  # FastAPI's node for an included router
        if not _holds_lean(route):  # building a router's contexts costs ~12 ms: skip it
            return []
        views = route.effective_route_contexts()
    else:
        return []
    return [LeanRoute(app, v, compile_route(v), route) for v in views
            if isinstance(getattr(v, "original_route", v), APIRoute)
            and is_lean(getattr(v, "original_route", v).endpoint)]


def _holds_lean(route: Any) -> bool:
    """Whether an included router, or one included in it, has an operation marked ``@lean``."""
    for r in getattr(getattr(route, "original_router", None), "routes", ()):
        if isinstance(r, APIRoute) and is_lean(r.endpoint):
            return True
        if hasattr(r, "original_router") and _holds_lean(r):
            return True
    return False


class RouteIndex(BaseRoute):
    """A first route that matches a request against only the routes that may take it."""

    def __init__(self, routes: Sequence[BaseRoute], templates: Sequence[list[str] | None]):
        self._routes = list(routes)
        self._at: dict[Key, set[int]] = {}  # literal path start -> routes (by position)
        for i, paths in enumerate(templates):
            for key in {_literal_start(p) for p in paths} if paths else {()}:
                self._at.setdefault(key, set()).add(i)
        self._seen: dict[Key, list[BaseRoute]] = {}

    def candidates(self, path: str) -> list[BaseRoute]:
        """The routes that may match ``path``, in the app's order: those whose literal start
        is a start of the path's first segments."""
        key = tuple(path.split("/")[1:1 + _DEPTH])
        found = self._seen.get(key)
        if found is None:
            hits: set[int] = set()
            for n in range(len(key) + 1):
                hits |= self._at.get(key[:n], set())
            found = [self._routes[i] for i in sorted(hits)]
            if len(self._seen) >= _MEMO:  # keys with ids in them: keep the memo bounded
                self._seen.clear()
            self._seen[key] = found
        return found

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        for route in self.candidates(scope["path"]):
            match, child = route.matches(scope)
            if match == Match.FULL:
                return Match.FULL, {**child, _CHOSEN: route}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route: BaseRoute = scope.pop(_CHOSEN)
        await route.handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)  # the routes themselves answer, after us


def _templates(router: APIRouter) -> list[str]:
    out: list[str] = []
    for route in router.routes:
        paths = _own_templates(route)
        if paths is None:
            return []  # a route we cannot read: the whole router goes in every key
        out.extend(paths)
    return out


def _own_templates(route: BaseRoute) -> list[str] | None:
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return None
    if isinstance(route, Mount):
        return [path.rstrip("/") + "/{path:path}"]
    return [path]


def _literal_start(template: str) -> Key:
    """The segments a template starts with before its first parameter, at most _DEPTH."""
    start: list[str] = []
    for segment in template.split("/")[1:1 + _DEPTH]:
        if "{" in segment:
            break
        start.append(segment)
    return tuple(start)
