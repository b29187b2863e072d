"""The authorisation matrix, on both databases: every route of the app (enumerated from the
app, so a new endpoint cannot escape) against every kind of caller.

1. no credentials: 401 problem+json on every route that is not public;
2. a caller on another kind's API (a merchant's signature on /v1/wallet, a subscriber's
   token on /v1/operator, a terminal's MAC on /v1/merchant, an operator key sent as a
   bearer token ...): 401/403;
3. a caller against another party of its own kind (B on A's cards, orders, NFC cards; M2 on
   M1's orders, stores, keys, notifications; T2 on T1's authorisations): refused with a
   code, and never a byte of the other party's data; list routes never show it either;
4. operator roles: an auditor reads only (every state-changing operator route is 403
   ``operator_role_forbidden``); managing operators is for admins.
Nothing of this moves money or writes an order (counted before and after); the ledger audit
after the test (the ``client`` fixture) must be clean.

Existing narrower tests: tests/merchants/test_merchant_signing.py
(test_a_merchant_cannot_reach_another_merchants_data), tests/payments/test_escrow.py
(test_only_the_buyer_can_dispute_or_confirm), tests/subscribers/test_statement.py
(test_nobody_reads_another_subscribers_statement).
"""

from __future__ import annotations

from typing import Any

from cash_helpers import PIN, client, clock, ctx, settings  # type: ignore[import-not-found]
from fastapi.testclient import TestClient
from security_world import (  # type: ignore[import-not-found]
    Party,
    Route,
    World,
    api_routes,
    assert_problem,
    build_world,
    card_sim,
    counts,
    dependency_names,
    fill,
    send,
    static,
)
from sqlalchemy import select

from paycell.context import Context
from paycell.onsite.terminal_tables import authorisations, terminals

__all__ = ["client", "clock", "ctx", "settings"]  # fixtures, imported for pytest

# The dependency that authenticates each family: a route in a family must use it.
AUTH_DEPENDENCY = {"subscriber": {"current_subscriber", "current_session"},
                   # signed_request: the batched order creation (nonce, key, merchant in
                   # the batch)
                   "merchant": {"current_merchant", "signed_request"},
                   # signed_message: the batched authorisation (nonce and state in the batch)
                   "terminal": {"current_terminal", "signed_message"},
                   "agent": {"current_agent"}, "operator": {"require_operator"}}
ADMIN_ONLY = {("GET", "/v1/operators"), ("POST", "/v1/operators"),
              ("POST", "/v1/operators/{name}/disable")}
# Path parameters that name a day of the caller's own, not somebody's resource.
SELF_SCOPED = {"business_date", "date"}
# Bodies that would pass validation, so that a refusal comes from ownership, not from 422.
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/wallet/cards/{card_id}/confirm"): {"code": "123456"},
    ("POST", "/v1/wallet/payments/{trade_no}/confirm"): {"pin": PIN},
    ("POST", "/v1/wallet/payments/{trade_no}/receipt"): {"pin": PIN},
    ("POST", "/v1/wallet/payments/{trade_no}/dispute"): {"reason": "never arrived"},
    ("POST", "/v1/wallet/nfc-cards/{card_id}/ecash/loads"): {
        "atc": 9, "amount_fen": 100, "date": "260101", "unpredictable": "0A0B0C0D",
        "cvr": "03A00000", "arqc": "00112233AABBCCDD", "card_balance_fen": 0},
    ("POST", "/v1/merchant/credentials/{key_id}/revoke"): {"after_s": 0},
    ("POST", "/v1/operators"): {"name": "sec-intruder", "role": "admin"},
    ("POST", "/v1/payments/{trade_no}/refunds"): {"out_request_no": "steal-1",
                                                   "amount_fen": 100},
}


def body_for(route: Route) -> Any:
    if route.method in ("GET", "DELETE"):
        return None
    return BODIES.get((route.method, route.path), {})


def no_leak(r: Any, victim: Party, where: str) -> None:
    """None of ``victim``'s markers in the answer, except those the caller itself sent."""
    sent = str(r.request.url) + r.request.content.decode("utf-8", "replace")
    text = r.text
    leaked = sorted(m for m in victim.markers if m and m in text and m not in sent)
    assert not leaked, f"{where}: {victim.name}'s {leaked} in {text[:400]}"


def test_every_route_is_classified_and_guarded(client: TestClient, ctx: Context) -> None:
    routes, unclassified = api_routes(client)
    assert not unclassified, f"routes no family claims (add them to FAMILIES): {unclassified}"
    assert len(routes) > 150
    for route in routes:
        needed = AUTH_DEPENDENCY.get(route.family)
        if needed is None:
            continue
        deps = dependency_names(client, route.method, route.path)
        assert deps & needed, f"{route.method} {route.path} ({route.family}) lacks {needed}"


def test_authorisation_matrix(client: TestClient, ctx: Context) -> None:
    world = build_world(client, ctx)
    routes, _ = api_routes(client)
    p = world.parties
    owner_of = {"subscriber": p["A"], "merchant": p["M1"], "terminal": p["T1"],
                "agent": p["agent"], "operator": p["admin"]}
    # Credentials in the wrong header: an operator key as a bearer token, a subscriber's
    # token as an operator or agent key, a merchant key id as an operator key.
    token = p["A"].signer("GET", "/", b"")["Authorization"].split()[1]
    admin_key = p["admin"].signer("GET", "/", b"")["X-API-Key"]
    confused = {
        "opkey-as-bearer": Party("opkey-as-bearer", "confused",
                                 static({"Authorization": f"Bearer {admin_key}"})),
        "token-as-apikey": Party("token-as-apikey", "confused",
                                 static({"X-API-Key": token, "X-Agent-Key": token})),
        "keyid-as-apikey": Party("keyid-as-apikey", "confused",
                                 static({"X-API-Key": p["M1"].ids["key_id"]})),
    }
    callers = {**p, **confused}
    before = counts(ctx)
    checked = 0
    for route in routes:
        if route.family == "public":
            continue
        owner = owner_of[route.family]
        target, body = fill(route, owner, world), body_for(route)
        # 1. no credentials
        r = send(client, None, route.method, target, body)
        assert_problem(r, 401)
        checked += 1
        # 2. every caller of another kind, and credentials in the wrong place
        for caller in callers.values():
            if caller.kind == route.family:
                continue
            r = send(client, caller.signer, route.method, target, body)
            assert_problem(r, 401, 403)
            no_leak(r, owner, f"{caller.name} {route.method} {target}")
            checked += 1
    checked += _same_kind(client, world, routes)
    checked += _terminals_apart(client, world)
    checked += _operator_roles(client, world, routes)
    assert counts(ctx) == before
    print(f"\nauthorisation matrix: {len(routes)} routes, {len(callers) + 1} callers, "
          f"{checked} refusals checked")


def _same_kind(client: TestClient, world: World, routes: list[Route]) -> int:
    """B against A's resources, M2 against M1's; list routes never show the other's."""
    p = world.parties
    checked = 0
    for family, (victim, intruder) in (("subscriber", (p["A"], p["B"])),
                                       ("merchant", (p["M1"], p["M2"]))):
        for route in routes:
            if route.family != family:
                continue
            target = fill(route, victim, world)
            owned = [x for x in route.params if x not in SELF_SCOPED]
            if owned:
                r = send(client, intruder.signer, route.method, target, body_for(route))
                assert_problem(r, 401, 403, 404)
            elif route.method == "GET":
                r = send(client, intruder.signer, "GET", target)
                assert r.status_code < 500, (target, r.text)
            else:
                continue  # a write on the caller's own account: not somebody else's
            no_leak(r, victim, f"{intruder.name} {route.method} {target}")
            checked += 1
    return checked


def _auth_state(world: World, name: str) -> tuple[str, int]:
    tid = world.parties[name].ids["terminal_id"]
    with world.ctx.engine.connect() as conn:
        pk = conn.execute(select(terminals.c.id).where(terminals.c.terminal_id == tid)
                          ).scalar_one()
        row = conn.execute(authorisations.select().where(
            authorisations.c.terminal_pk == pk,
            authorisations.c.stan == world.sales[name].stan)).one()
    return row.state, row.refunded_fen


def _terminals_apart(client: TestClient, world: World) -> int:
    """T2 cannot reverse, void or refund T1's authorisation, nor sell at M1's store."""
    t1, t2 = world.parties["T1"], world.parties["T2"]
    sale = world.sales["T1"]
    before = _auth_state(world, "T1")
    batch = int(t2.ids["batch_no"])
    attempts = [
        ("/v1/terminal/reversals", {"batch_no": sale.batch_no, "stan": sale.stan,
                                    "amount_fen": sale.amount_fen}),
        ("/v1/terminal/voids", {"batch_no": sale.batch_no, "stan": sale.stan}),
        ("/v1/terminal/refunds", {"batch_no": batch, "stan": "900001",
                                  "original_batch_no": sale.batch_no,
                                  "original_stan": sale.stan, "amount_fen": 100}),
    ]
    for path, body in attempts:
        r = send(client, t2.signer, "POST", path, body)
        if r.status_code == 200:  # a reversal of an unknown message is answered, not done
            assert r.json().get("approved") is not True and r.json()["terminal_id"] == \
                t2.ids["terminal_id"], r.text
        else:
            assert_problem(r, 403, 404, 409)
        no_leak(r, t1, f"T2 POST {path}")
    assert _auth_state(world, "T1") == before
    msg = world.pos["T2"].message(card_sim(world, "B"), 100, "900002")
    msg.update(merchant_code=world.parties["M1"].ids["merchant_code"], store_code="ST-M1")
    r = send(client, t2.signer, "POST", "/v1/terminal/authorisations", msg)
    assert r.status_code in (200, 403, 404, 409, 422), r.text
    if r.status_code == 200:
        assert r.json()["approved"] is False, r.text
    return len(attempts) + 1


def _operator_roles(client: TestClient, world: World, routes: list[Route]) -> int:
    """Auditors read only; only admins manage operators."""
    p = world.parties
    checked = 0
    acted: list[str] = []
    for route in routes:
        if route.family != "operator":
            continue
        target, body = fill(route, p["admin"], world), body_for(route)
        if route.method != "GET":
            r = send(client, p["auditor"].signer, route.method, target, body)
            if r.status_code != 403 or r.json().get("code") != "operator_role_forbidden":
                acted.append(f"{route.method} {route.path} -> {r.status_code}")
            checked += 1
        if (route.method, route.path) in ADMIN_ONLY:
            r = send(client, p["operator"].signer, route.method, target, body)
            assert assert_problem(r, 403)["code"] == "operator_role_forbidden", route
            checked += 1
        elif route.method == "GET":
            r = send(client, p["auditor"].signer, route.method, target)
            assert r.status_code < 500 and r.status_code not in (401, 403), (target, r.text)
            checked += 1
    assert not acted, "an auditor got past the role check:\n" + "\n".join(acted)
    return checked
