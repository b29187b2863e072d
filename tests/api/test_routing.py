"""The route index picks, for every path, the route FastAPI's own scan would have picked."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.routing import BaseRoute, Match

from paycell.api.app import create_app
from paycell.api.routing import LeanRoute, RouteIndex
from paycell.config import Settings

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(Settings(_env_file=None, database_url="sqlite://", run_workers=False,
                               simulators=True))


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "",
            "headers": [], "query_string": b""}


def _scan(routes: list[BaseRoute], method: str, path: str) -> BaseRoute | None:
    """What the plain scan picks: the first route in order that matches fully."""
    for route in routes:
        if route.matches(_scope(method, path))[0] == Match.FULL:
            return route
    return None


def _indexed(ix: RouteIndex, method: str, path: str) -> BaseRoute | None:
    match, child = ix.matches(_scope(method, path))
    return child["paycell.route"] if match == Match.FULL else None


def _operation(route: BaseRoute | None, method: str, path: str) -> object:
    """The operation a chosen route runs: a lean route's own, or the one the router picks."""
    if isinstance(route, LeanRoute):
        return route.original
    if hasattr(route, "_match"):  # FastAPI's node for an included router
        return route._match(_scope(method, path))[2]
    return route


def _parts(app: FastAPI) -> tuple[RouteIndex, list[BaseRoute], list[tuple[str, str]]]:
    ix, *routes = app.router.routes
    assert isinstance(ix, RouteIndex)
    ops = [(m.upper(), p) for p, item in app.openapi()["paths"].items() for m in item]
    return ix, routes, ops


def test_every_operation_goes_where_the_scan_sends_it(app: FastAPI) -> None:
    ix, routes, ops = _parts(app)
    assert len(ops) > 100
    for method, template in ops:
        path = re.sub(r"{[^}]+}", "7", template)
        chosen = _indexed(ix, method, path)
        assert chosen is not None, (method, path)
        scanned = _scan(routes, method, path)
        if isinstance(chosen, LeanRoute):  # in front of the router the scan picks
            assert chosen.router is scanned, (method, path)
        else:
            assert chosen is scanned, (method, path)
        assert _operation(chosen, method, path) is _operation(scanned, method, path)
        # Few routes are tried: the ones filed under the path's start.
        assert len(ix.candidates(path)) < len(routes) / 2, path


def test_what_no_route_takes_fully_is_left_to_the_scan(app: FastAPI) -> None:
    ix, routes, _ = _parts(app)
    for method, path in [("GET", "/v1/nowhere"), ("POST", "/health"),  # 404, 405
                         ("DELETE", "/v1/wallet/transfers"), ("GET", "/v1/wallet/"),
                         ("GET", "/"), ("GET", "")]:
        assert _indexed(ix, method, path) is None
        assert _scan(routes, method, path) is None


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_path_built_from_the_apps_own_segments(app: FastAPI, data: st.DataObject
                                                   ) -> None:
    ix, routes, ops = _parts(app)
    words = sorted({s for _, p in ops for s in p.split("/") if s and "{" not in s})
    segment = st.one_of(st.sampled_from(words), st.sampled_from(["7", "T1", "", "x.y"]))
    path = "/" + "/".join(data.draw(st.lists(segment, min_size=0, max_size=6)))
    method = data.draw(st.sampled_from(METHODS))
    chosen, scanned = _indexed(ix, method, path), _scan(routes, method, path)
    if isinstance(chosen, LeanRoute):
        assert chosen.router is scanned, (method, path)
    else:
        assert chosen is scanned, (method, path)
    assert _operation(chosen, method, path) is _operation(scanned, method, path)


def test_the_lean_operations_are_the_marked_ones(app: FastAPI) -> None:
    ix, _, _ = _parts(app)
    lean = {(sorted(r.original.methods)[0], r.path) for r in ix._routes
            if isinstance(r, LeanRoute)}
    assert lean == {("POST", "/v1/wallet/transfers"), ("POST", "/v1/payments"),
                    ("POST", "/v1/wallet/payments/{trade_no}/confirm"),
                    ("POST", "/v1/terminal/authorisations")}
    off = create_app(Settings(_env_file=None, database_url="sqlite://", run_workers=False,
                              lean_routes=False))
    assert not any(isinstance(r, LeanRoute) for r in _parts(off)[0]._routes)


def test_through_the_app_answers_are_unchanged(client: TestClient) -> None:
    r = client.get("/v1/nowhere")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert client.delete("/v1/wallet/transfers").status_code == 405
    assert client.get("/health").status_code == 200
    r = client.post("/v1/wallet/transfers", json={})
    assert (r.status_code, r.json()["code"]) == (401, "authentication_required")


def test_fastapis_telemetry_is_off_unless_asked_for() -> None:
    off = create_app(Settings(database_url="sqlite:///:memory:"))
    on = create_app(Settings(database_url="sqlite:///:memory:", otel=True))
    assert not any(off._telemetry[k] for k in ("tracing", "metrics", "logs"))
    assert all(on._telemetry[k] for k in ("tracing", "metrics", "logs"))
