"""One world for the security tests: two of every kind of caller, each owning resources, and
the credentials each of them sends.

Callers: subscribers A and B (bearer tokens), merchants M1 and M2 (signed requests), POS
terminals T1 (of M1) and T2 (of M2) (MACed requests), a cash agent (X-Agent-Key) and three
operators, one per role (admin, operator, auditor). A pays M1 (an order, confirmed, partly
refunded) and taps its NFC card on T1; B does the same with M2 and T2; A and B never deal
with each other, so anything of A's that B sees is a leak. ``markers`` hold strings that
only their owner (and operators) may ever read.

Routes are enumerated from the app itself (``api_routes``) and sorted into families by
path; a route no family claims fails the matrix, so a new endpoint cannot slip past it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json as jsonlib
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cash_helpers import OPERATOR, PIN, fund, idem, wallet  # type: ignore[import-not-found]
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from starlette.routing import BaseRoute, Mount

from paycell.api.routing import RouteIndex
from paycell.context import Context
from paycell.funding.tables import cards as bank_cards
from paycell.funding.tables import topups, withdrawals
from paycell.ledger import TransferRequest
from paycell.ledger.chart import Code, TransferCode, system_account
from paycell.merchants import signing
from paycell.merchants.model import OnboardedMerchant
from paycell.merchants.service import add_store, create_active_merchant
from paycell.notifications.tables import notifications
from paycell.onsite import cards as nfc
from paycell.onsite import terminal_auth, terminals
from paycell.onsite.card_sim import CardSim
from paycell.onsite.keystore import KeyStore
from paycell.onsite.pos_sim import PosSim, Sale
from paycell.operators.service import create_operator
from paycell.payments.tables import payment_orders, payment_refunds
from paycell.settlement import clearing
from paycell.subscribers.service import Subscriber

_n = itertools.count(1)
Headers = dict[str, str]
# A signer gets (method, target, body) and returns the headers that authenticate it.
Signer = Callable[[str, str, bytes], Headers]


# -- the app's routes ----------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    method: str
    path: str
    family: str
    params: tuple[str, ...]


# Families by path, first match wins. ``public`` needs no credentials; ``simulator`` are the
# loopback bank/carrier/merchant simulators (mounted in development only).
FAMILIES: tuple[tuple[str, str], ...] = (
    (r"^/(openapi\.json|docs|docs/oauth2-redirect|health)$", "public"),
    (r"^/v1/wallet/(signup|login|token/refresh|pin/reset|pin/reset/confirm)$", "public"),
    (r"^/v1/wallet(/|$)", "subscriber"),
    (r"^/v1/(merchant|payments)(/|$)", "merchant"),
    (r"^/v1/terminal/", "terminal"),
    (r"^/v1/agent(/|$)", "agent"),
    (r"^/v1/(operator|operators|approvals|merchants|notifications|ledger)(/|$)", "operator"),
    (r"^/sim/", "simulator"),
)


def family_of(path: str) -> str | None:
    for pattern, family in FAMILIES:
        if re.search(pattern, path):
            return family
    return None


def _flatten(routes: list[BaseRoute]) -> Iterator[Any]:
    """The app's routes; FastAPI >= 0.16x keeps included routers as lazy nodes."""
    for r in routes:
        if isinstance(r, RouteIndex):  # an index over the routes that follow it
            continue
        contexts = getattr(r, "effective_route_contexts", None)
        if contexts is not None:
            yield from contexts()
        else:
            yield r


def api_routes(client: TestClient) -> tuple[list[Route], list[str]]:
    """Every (method, path) the app serves, and the paths no family claims."""
    found: list[Route] = []
    unclassified: list[str] = []
    for r in _flatten(list(client.app.routes)):  # type: ignore[attr-defined]
        path: str = r.path
        family = family_of(path)
        if family is None:
            unclassified.append(path)
            continue
        if isinstance(r, Mount) or family == "simulator":
            continue
        params = tuple(re.findall(r"{(\w+)}", path))
        for method in sorted((r.methods or set()) - {"HEAD"}):
            found.append(Route(method, path, family, params))
    return found, unclassified


def dependency_names(client: TestClient, method: str, path: str) -> set[str]:
    """The names of every dependency (recursively) of one route."""
    for r in _flatten(list(client.app.routes)):  # type: ignore[attr-defined]
        if getattr(r, "path", None) == path and method in (r.methods or ()):
            dependant = r.dependant
            names: set[str] = set()
            stack = list(dependant.dependencies)
            while stack:
                d = stack.pop()
                names.add(getattr(d.call, "__name__", ""))
                stack.extend(d.dependencies)
            return names
    raise KeyError((method, path))


# -- callers ---------------------------------------------------------------------------------
def static(headers: Headers) -> Signer:
    return lambda _m, _t, _b: dict(headers)


def merchant_signer(ctx: Context, m: OnboardedMerchant) -> Signer:
    def sign(method: str, target: str, body: bytes) -> Headers:
        return signing.sign_headers(m.key_id, m.secret, method, target, body,
                                    timestamp=ctx.clock.now_us() // 1_000_000)
    return sign


def terminal_signer(ctx: Context, terminal_id: str, key_hex: str) -> Signer:
    key = bytes.fromhex(key_hex)

    def sign(method: str, target: str, body: bytes) -> Headers:
        ts, nonce = str(ctx.clock.now_us() // 1_000_000), uuid.uuid4().hex
        return {"X-Terminal-Id": terminal_id, "X-Terminal-Timestamp": ts,
                "X-Terminal-Nonce": nonce,
                "X-Terminal-MAC": terminal_auth.message_mac(key, method, target, terminal_id, ts,
                                                        nonce, body)}
    return sign


def send(client: TestClient, signer: Signer | None, method: str, target: str,
         body: Any = None, *, raw: bytes | None = None,
         content_type: str = "application/json") -> Any:
    """One request, authenticated by ``signer`` (None: no credentials), with an
    Idempotency-Key on writes."""
    data = raw if raw is not None else (b"" if body is None else jsonlib.dumps(body).encode())
    headers: Headers = {}
    if data:
        headers["Content-Type"] = content_type
    if method != "GET":
        headers["Idempotency-Key"] = str(uuid.uuid4())
    if signer is not None:
        headers.update(signer(method, target, data))
    return client.request(method, target, content=data, headers=headers)


# -- the world -------------------------------------------------------------------------------
@dataclass
class Party:
    name: str
    kind: str  # subscriber | merchant | terminal | agent | operator
    signer: Signer
    markers: set[str] = field(default_factory=set)  # strings only it may read
    ids: dict[str, str] = field(default_factory=dict)  # path parameters of its resources


@dataclass
class World:
    ctx: Context
    parties: dict[str, Party]
    a: Subscriber
    b: Subscriber
    m1: OnboardedMerchant
    m2: OnboardedMerchant
    sales: dict[str, Sale]  # T1's and T2's approved taps
    pos: dict[str, PosSim]
    business_date: str

    def party(self, name: str) -> Party:
        return self.parties[name]


def _iccid() -> str:
    body = f"8986{next(_n) + 7 * 10**10:014d}"
    return body + nfc.luhn_digit(body)


def _bank_card_topup_withdrawal(ctx: Context, sub: Subscriber, tag: str) -> dict[str, str]:
    """A verified bank card, a confirmed top-up and a confirmed withdrawal of ``sub``,
    written as the funding services leave them (the bank's part is not under test)."""
    now = ctx.clock.now_us()
    card_id, topup_id, wd_id = f"card_sec{tag}", f"tu_sec{tag}", f"wd_sec{tag}"
    with ctx.engine.begin() as conn:
        conn.execute(bank_cards.insert().values(
            id=card_id, subscriber_id=sub.id, state="active", bank="icbc", last4="0007",
            is_default=True, created_at=now, updated_at=now, verified_at=now))
        conn.execute(topups.insert().values(
            id=topup_id, subscriber_id=sub.id, source="card", card_id=card_id, partner="icbc",
            amount_fen=2_000, currency="CNY", held_in_suspense=False, state="confirmed",
            created_at=now, updated_at=now, resolved_at=now))
        conn.execute(withdrawals.insert().values(
            id=wd_id, subscriber_id=sub.id, kind="withdrawal", card_id=card_id, bank="icbc",
            amount_fen=1_000, fee_fen=0, currency="CNY", state="confirmed", created_at=now,
            updated_at=now, resolved_at=now))
    clearing = system_account(ctx.ledger, Code.BANK_CLEARING, "icbc")
    ctx.ledger.post_one(TransferRequest(f"topup:{topup_id}", clearing.id,
                                        sub.wallet_account_id, 2_000,
                                        code=int(TransferCode.TOPUP_BANK), ref="sec top-up"))
    ctx.ledger.post_one(TransferRequest(f"withdrawal:{wd_id}", sub.wallet_account_id,
                                        clearing.id, 1_000,
                                        code=int(TransferCode.WITHDRAWAL), ref="sec wd"))
    return {"card_id": card_id, "topup_id": topup_id, "withdrawal_id": wd_id}


def _merchant(ctx: Context, tag: str) -> OnboardedMerchant:
    m = create_active_merchant(ctx, name=f"Secure Shop {tag}", category="retail",
                               notify_url="http://127.0.0.1:9/notify")
    add_store(ctx, m.merchant.id, f"ST-{tag}", f"Store of {tag}", "1 Nanjing Road", "test")
    assert m.merchant.payable_account_id is not None
    src = system_account(ctx.ledger, Code.BANK_CLEARING, "testbank")
    ctx.ledger.post_one(TransferRequest(f"test:payable:{uuid.uuid4()}", src.id,
                                        m.merchant.payable_account_id, 200_000,
                                        code=TransferCode.TOPUP_BANK, ref="sec payable"))
    return m


def _order(client: TestClient, ctx: Context, m: OnboardedMerchant, sub: Subscriber,
           auth: Headers, tag: str) -> dict[str, str]:
    """An order of ``m`` paid by ``sub`` and partly refunded; one more left waiting."""
    signer = merchant_signer(ctx, m)
    paid = send(client, signer, "POST", "/v1/payments", {
        "out_trade_no": f"OUT-{tag}-PAID", "amount_fen": 3_000, "subject": f"Goods {tag}",
        "payer_msisdn": sub.msisdn})
    assert paid.status_code == 201, paid.text
    trade_no = paid.json()["trade_no"]
    r = client.post(f"/v1/wallet/payments/{trade_no}/confirm", json={"pin": PIN},
                    headers={**auth, **idem()})
    assert r.status_code == 200, r.text
    r = send(client, signer, "POST", f"/v1/payments/{trade_no}/refunds",
             {"out_request_no": f"RF-{tag}", "amount_fen": 500, "reason": "one broken"})
    assert r.status_code in (200, 201), r.text
    waiting = send(client, signer, "POST", "/v1/payments", {
        "out_trade_no": f"OUT-{tag}-WAIT", "amount_fen": 700, "subject": f"More {tag}",
        "payer_msisdn": sub.msisdn})
    assert waiting.status_code == 201, waiting.text
    return {"trade_no": trade_no, "waiting_trade_no": waiting.json()["trade_no"]}


def build_world(client: TestClient, ctx: Context) -> World:
    """Everything above, through the services and the API; a few seconds."""
    a, a_auth = wallet(ctx)
    b, b_auth = wallet(ctx)
    for sub in (a, b):
        fund(ctx, sub, 50_000)
    m1, m2 = _merchant(ctx, "M1"), _merchant(ctx, "M2")
    parties: dict[str, Party] = {}
    for name, sub, auth in (("A", a, a_auth), ("B", b, b_auth)):
        ids = _bank_card_topup_withdrawal(ctx, sub, name)
        card = nfc.activate(ctx, nfc.issue_card(ctx, sub, _iccid()).id)
        ids["nfc_card_id"] = str(card.id)
        parties[name] = Party(name, "subscriber", static(auth), ids=ids,
                              markers={sub.msisdn, ids["card_id"], ids["topup_id"],
                                       ids["withdrawal_id"], card.pan})
        parties[name].ids["pan"], parties[name].ids["psn"] = card.pan, card.psn
    for name, m in (("M1", m1), ("M2", m2)):
        parties[name] = Party(name, "merchant", merchant_signer(ctx, m),
                              markers={m.merchant.code, m.key_id, m.secret,
                                       f"ST-{name}", f"Secure Shop {name}"},
                              ids={"merchant_id": str(m.merchant.id), "key_id": m.key_id,
                                   "merchant_code": m.merchant.code})
    for payer, m_name, m in (("A", "M1", m1), ("B", "M2", m2)):
        sub, auth = (a, a_auth) if payer == "A" else (b, b_auth)
        ids = _order(client, ctx, m, sub, auth, m_name)
        parties[payer].ids.update(ids)
        parties[m_name].ids.update(ids)
        parties[m_name].markers |= {ids["trade_no"], ids["waiting_trade_no"],
                                    f"OUT-{m_name}-PAID", f"RF-{m_name}"}
        parties[payer].markers |= {ids["trade_no"], ids["waiting_trade_no"]}
    # stores, notifications
    for name, m in (("M1", m1), ("M2", m2)):
        r = send(client, parties[name].signer, "GET", "/v1/merchant/stores")
        assert r.status_code == 200, r.text
        parties[name].ids["store_id"] = str(r.json()["items"][0]["id"])
        with ctx.engine.connect() as conn:
            nid = conn.execute(select(notifications.c.id).where(
                notifications.c.merchant_id == m.merchant.id)).scalars().first()
        assert nid is not None
        parties[name].ids["notification_id"] = nid
        parties[name].markers.add(nid)
    # terminals with one approved tap each
    sales: dict[str, Sale] = {}
    pos: dict[str, PosSim] = {}
    for t_name, m_name, m, payer in (("T1", "M1", m1, "A"), ("T2", "M2", m2, "B")):
        reg = terminals.register_terminal(ctx, m.merchant.code, f"ST-{m_name}", "test")
        tid = reg.terminal.terminal_id
        p = PosSim(client, tid, reg.key_hex, m.merchant.code, f"ST-{m_name}", clock=ctx.clock)
        p.sign_on()
        sim = CardSim.personalised(KeyStore(ctx.settings), parties[payer].ids["pan"],
                                   parties[payer].ids["psn"])
        # T1 taps twice, T2 once: T1's target sale (STAN 000002) is no STAN of T2's
        for _ in range(2 if t_name == "T1" else 1):
            sale = p.purchase(sim, 1_200)
            assert sale.approved, sale.answer
        sales[t_name], pos[t_name] = sale, p
        parties[t_name] = Party(t_name, "terminal", terminal_signer(ctx, tid, reg.key_hex),
                                markers={reg.key_hex},
                                ids={"terminal_id": tid, "batch_no": str(sale.batch_no),
                                     "stan": sale.stan, "key_hex": reg.key_hex})
        parties[m_name].ids["terminal_id"] = tid
    # operators, one per role, and an agent
    for role in ("admin", "operator", "auditor"):
        _, key = create_operator(ctx, f"sec-{role}", role)
        parties[role] = Party(role, "operator", static({"X-API-Key": key}))
    r = client.post("/v1/operator/agents", json={"code": "SEC-01", "name": "Secure outlet",
                                                 "location": "Futian"}, headers=idem(**OPERATOR))
    assert r.status_code == 201, r.text
    parties["agent"] = Party("agent", "agent", static({"X-Agent-Key": r.json()["api_key"]}),
                             ids={"agent_id": str(r.json()["agent"]["id"])})
    business_date = dt.datetime.fromtimestamp(ctx.clock.now_us() / 1e6,
                                              dt.timezone(dt.timedelta(hours=8))).date()
    # The day closes; clearing it gives each merchant a settlement of its own.
    ctx.clock.advance(days=2)  # type: ignore[attr-defined]
    clearing.clear_date(ctx, business_date, actor="sec-admin")
    return World(ctx, parties, a, b, m1, m2, sales, pos, business_date.isoformat())


def card_sim(world: World, holder: str) -> CardSim:
    """A fresh simulated applet of ``holder``'s NFC card, its counter past every tap made."""
    ids = world.parties[holder].ids
    sim = CardSim.personalised(KeyStore(world.ctx.settings), ids["pan"], ids["psn"])
    sim.atc = 50
    return sim


def fill(route: Route, owner: Party, world: World,
         base: tuple[str, str, str] = ("A", "M1", "T1")) -> str:
    """The route's path with the owner's resource ids, else those of the ``base`` parties
    (a subscriber, a merchant, a terminal), else harmless samples."""
    w = world.parties
    sub = world.a if base[0] == "A" else world.b
    samples = {**w[base[0]].ids, **w[base[1]].ids, **w[base[2]].ids,
               "action": "lock", "business_date": world.business_date,
               "date": world.business_date, "month": world.business_date[:7],
               "subscriber_id": str(sub.id), "agent_id": w["agent"].ids["agent_id"],
               "name": "sec-operator", "code": "P100001", "transfer_id": "topup:x",
               "batch_no": "1"}
    nfc_route = "nfc-cards" in route.path
    samples["card_id"] = (owner.ids.get("nfc_card_id" if nfc_route else "card_id")
                          or w[base[0]].ids["nfc_card_id" if nfc_route else "card_id"])
    path = route.path
    for p in route.params:
        value = (owner.ids.get(p) if p != "card_id" else None) or samples.get(p)
        value = value or ("1" if p.endswith("_id") else None)
        assert value is not None, f"no sample for {{{p}}} in {route.method} {route.path}"
        path = path.replace("{" + p + "}", value)
    return path


# -- what changed ----------------------------------------------------------------------------
def counts(ctx: Context) -> dict[str, int]:
    """Rows that only move when money or orders move."""
    from paycell.ledger.tables import transfers

    out: dict[str, int] = {}
    with ctx.engine.connect() as conn:
        for name, table in (("ledger_transfers", transfers), ("payment_orders", payment_orders),
                            ("payment_refunds", payment_refunds)):
            out[name] = int(conn.execute(select(func.count()).select_from(table)).scalar_one())
    return out


def assert_problem(r: Any, *statuses: int) -> dict[str, Any]:
    """``r`` is a problem+json refusal with one of ``statuses`` and a ``code``."""
    assert r.status_code in statuses, (r.status_code, r.request.method, r.request.url, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    assert isinstance(body.get("code"), str) and body["code"], body
    return body


__all__ = ["OPERATOR", "PIN", "Party", "Route", "World", "api_routes", "assert_problem",
           "build_world", "card_sim", "counts", "dependency_names", "family_of", "fill",
           "merchant_signer", "send", "static", "terminal_signer"]
