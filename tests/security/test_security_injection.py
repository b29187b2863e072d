"""Hostile text in every text field of every JSON body (POST/PUT/PATCH, read from the app's
OpenAPI document), sent by the caller the route is for, on both databases: SQL injection,
NUL, a lone surrogate, 100 kB, right-to-left override + emoji + GBK-only characters,
HTML/script, path traversal; and a 2 MB body per operation.

Never a 5xx; every refusal problem+json with a ``code``; nothing half-written (the ledger
audit is clean afterwards, and the tables the SQL tries to drop still answer). PostgreSQL
refuses NUL in text, and neither database can store a lone surrogate: both must come back
as a 4xx, not as a 500 from the driver.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from cash_helpers import PIN, client, clock, ctx, settings  # type: ignore[import-not-found]
from fastapi.testclient import TestClient
from security_world import (  # type: ignore[import-not-found]
    Route,
    World,
    api_routes,
    build_world,
    fill,
    send,
)

from paycell.context import Context
from paycell.ledger.audit import audit

__all__ = ["client", "clock", "ctx", "settings"]  # fixtures, imported for pytest

PAYLOADS = {
    "sql-or": "' OR 1=1 --",
    "sql-drop": '"; DROP TABLE ledger_transfers; --',
    "nul": "abc\u0000def",
    "surrogate": "abc\ud800def",
    "long": "A" * 100_000,
    "unicode": "\u202egnp.exe\u202c 😀👩‍👩‍👧 镕堃喆 𠜎",
    "html": "<script>alert(1)</script><img src=x onerror=alert(1)>",
    "traversal": "../../../../etc/passwd%00/..\\..\\windows",
}
TWO_MB = 2 * 1024 * 1024
# Plausible values, so that a field's neighbours pass validation and the hostile value
# travels as deep as it can.
VALID = {"pin": PIN, "old_pin": PIN, "new_pin": "902846", "amount_fen": 100,
         "currency": "CNY", "face_value_fen": 100, "count": 1, "expires_on": "2026-12-31",
         "role": "auditor", "kind": "hmac", "source": "wallet", "outcome": "buyer",
         "effective_from": "2026-12-01", "business_date": "2026-12-01", "month": "2026-01",
         "expansion_fee_fen": 100, "after_s": 3600, "batch_no": 1, "stan": "000901",
         "atc": 60, "date": "260101", "command": "lock", "action": "note",
         "contact_email": "ops@example.com", "contact_phone": "+8613900139000",
         "category": "retail", "notify_url": "http://127.0.0.1:9/notify"}


def _schema(doc: dict[str, Any], s: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in s:
        s = doc["components"]["schemas"][s["$ref"].split("/")[-1]]
    return s


def _types(doc: dict[str, Any], s: dict[str, Any]) -> list[dict[str, Any]]:
    s = _schema(doc, s)
    if "anyOf" in s:
        return [_schema(doc, x) for x in s["anyOf"]]
    return [s]


def _sample(doc: dict[str, Any], name: str, s: dict[str, Any], world: World) -> Any:
    if name in VALID:
        return VALID[name]
    if name.endswith("msisdn"):
        return world.b.msisdn
    for t in _types(doc, s):
        if "enum" in t:
            return t["enum"][0]
        kind = t.get("type")
        if kind == "string":
            return t.get("examples", ["x" * max(1, t.get("minLength", 1))])[0]
        if kind == "integer":
            return max(1, t.get("minimum", 1))
        if kind == "boolean":
            return False
        if kind == "array":
            return []
        if kind == "object":
            return {}
    return None


def operations(doc: dict[str, Any], world: World) -> list[tuple[str, str, dict[str, Any],
                                                                 list[str]]]:
    """(method, path, a plausible body, its text fields) of every JSON-bodied write."""
    found = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            content = op.get("requestBody", {}).get("content", {})
            if method.upper() not in ("POST", "PUT", "PATCH") or \
                    "application/json" not in content:
                continue
            body_schema = _schema(doc, content["application/json"].get("schema", {}))
            props = body_schema.get("properties", {})
            body = {k: _sample(doc, k, v, world) for k, v in props.items()}
            texts = [k for k, v in props.items()
                     if any(t.get("type") == "string" for t in _types(doc, v))]
            found.append((method.upper(), path, body, texts))
    return found


def _caller(world: World, route: Route, field: str) -> Any:
    """The signer of the party the route is for (None: a public route)."""
    p = world.parties
    if route.family == "subscriber":
        # Guesses at a PIN lock the wallet: B takes those, A keeps its PIN for the rest.
        return p["B" if "pin" in field else "A"].signer
    owner = {"merchant": "M1", "terminal": "T1", "agent": "agent", "operator": "admin"}
    return p[owner[route.family]].signer if route.family in owner else None


def _check(r: Any, what: str, failures: list[str]) -> None:
    if r.status_code >= 500:
        failures.append(f"{what}: {r.status_code} {r.text[:200]}")
    elif r.status_code >= 400:
        kind = r.headers.get("content-type", "")
        code = r.json().get("code") if kind.startswith("application/problem+json") else None
        if not code:
            failures.append(f"{what}: {r.status_code} without a problem code: {r.text[:200]}")


URL_PAYLOADS = {"sql-or": "' OR 1=1 --", "nul": "a\u0000b", "long": "B" * 8_000,
                "unicode": "\u202e😀镕", "traversal": "../../etc/passwd"}


def _hostile_paths_and_queries(client: TestClient, world: World, doc: dict[str, Any],
                               routes: dict[tuple[str, str], Route],
                               failures: list[str]) -> int:
    """The same values in every path parameter and every query parameter of every GET,
    sent by the route's own caller."""
    sent = 0
    for (method, path), route in routes.items():
        if route.family == "public":
            continue
        signer = _caller(world, route, "")
        base = fill(route, world.parties["A"], world)
        segments = route.path.split("/")
        for param in route.params if method == "GET" else ():
            at = segments.index("{" + param + "}")
            for name, value in URL_PAYLOADS.items():
                parts = base.split("/")
                parts[at] = quote(value, safe="")
                _check(send(client, signer, "GET", "/".join(parts)),
                       f"GET {path} {{{param}}}={name}", failures)
                sent += 1
        if method != "GET":
            continue
        for q in doc["paths"].get(path, {}).get("get", {}).get("parameters", []):
            if q.get("in") != "query":
                continue
            for name, value in URL_PAYLOADS.items():
                target = f"{base}?{q['name']}={quote(value, safe='')}"
                _check(send(client, signer, "GET", target),
                       f"GET {path}?{q['name']}={name}", failures)
                sent += 1
    return sent


def test_hostile_text_in_every_field(client: TestClient, ctx: Context) -> None:
    world = build_world(client, ctx)
    # The same app, answering a server error as a 500 instead of raising it in the test.
    client = TestClient(client.app, raise_server_exceptions=False)
    doc = client.get("/openapi.json").json()
    routes = {(r.method, r.path): r for r in api_routes(client)[0]}
    # A spare key of M1's: a revocation under test revokes it, not the key M1 signs with.
    r = send(client, world.parties["M1"].signer, "POST", "/v1/merchant/credentials",
             {"label": "spare"})
    assert r.status_code == 201, r.text
    world.parties["M1"].ids["key_id"] = r.json()["credential"]["key_id"]
    failures: list[str] = []
    sent = 0
    for method, path, body, texts in operations(doc, world):
        route = routes[(method, path)]
        # Operators act on M2, B and T2, so that M1, A and T1 stay usable as callers.
        target = fill(route, world.parties.get("admin") if route.family == "operator"
                      else world.parties["A"], world,
                      ("B", "M2", "T2") if route.family == "operator" else ("A", "M1", "T1"))
        for field in texts:
            signer = _caller(world, route, field)
            for name, value in PAYLOADS.items():
                r = send(client, signer, method, target, {**body, field: value})
                _check(r, f"{method} {path} {field}={name}", failures)
                sent += 1
        field = texts[0] if texts else "padding"
        big = json.dumps({**body, field: "x" * TWO_MB}).encode()
        r = send(client, _caller(world, route, field), method, target, raw=big)
        _check(r, f"{method} {path} 2 MB", failures)
        sent += 1
    sent += _hostile_paths_and_queries(client, world, doc, routes, failures)
    assert not failures, f"{len(failures)} of {sent}:\n" + "\n".join(failures)
    report = audit(ctx.engine)
    assert report.ok, [c.detail for c in report.checks if not c.ok]
    assert client.get("/v1/ledger/audit", headers={"X-API-Key": "test-operator-key"}
                      ).status_code == 200
    print(f"\ninjection: {len(operations(doc, world))} operations, {sent} requests")
