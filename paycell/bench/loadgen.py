"""The HTTP benchmark's load generator, run as a process of its own beside the server:
``python -m paycell.bench.loadgen PLAN.json RESULT.json``.

``users`` virtual users, each with its own kept-alive connection of
:mod:`paycell.bench.rawhttp`, run flows picked by the mix's weights, in one of two ways:

- *closed loop* (the plan has no ``rate``): each user is an asyncio task that runs a flow
  to its end and starts the next. It measures capacity: throughput at a fixed number of
  users, whose latency is then users / throughput (Little's law);
- *open loop* (``rate``, k6's constant-arrival-rate, as in Mojaloop's performance tests):
  a flow is due every ``1 / rate`` seconds and starts with an idle user. It asks whether
  the server sustains a given rate, and at what latency.

Flows:

- ``p2p``: ``POST /v1/wallet/transfers`` (Bearer token, PIN) to another user's number;
- ``remote``: the merchant's signed ``POST /v1/payments`` for this user, then the user's
  ``POST /v1/wallet/payments/{trade_no}/confirm`` with the PIN: one payment, two requests;
- ``nfc``: the user's card (a :class:`CardSim`) answers GENERATE AC with an ARQC, the user's
  own terminal sends ``POST /v1/terminal/authorisations`` (MACed), the card takes the ARPC.

A flow's latency runs from its first request to its last answer, so a remote payment's
latency covers two requests. Each request is also timed on its own, by kind (``p2p``,
``order-create``, ``confirm``, ``nfc``): what an API client waits for one call.

Every request carries its own Idempotency-Key. Each user owns its wallet, card and terminal,
and runs one flow at a time, so ATCs and STANs only grow, as on real cards and terminals.
Following Mojaloop's method the first ``warmup`` seconds are run but not counted: in a
closed loop a flow counts when it *ends* inside the measured window, in an open loop when it
was *due* inside it. Progress goes to stdout as JSON lines; the results to RESULT.json.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import random
import secrets
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from paycell.bench.rawhttp import Connection, Response, TransportError
from paycell.heap import settle_heap
from paycell.merchants.signing import MerchantAuth
from paycell.onsite import emv
from paycell.onsite.card_sim import CardSim
from paycell.onsite.pos_sim import CST, TerminalAuth

FLOWS = ("p2p", "remote", "nfc")
REQUEST_TIMEOUT_S = 30.0
DROPPED = "dropped: no idle user"  # an open-loop flow that was due while every user was busy


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(slots=True)
class Done:
    flow: str
    began: float
    ended: float
    ok: bool
    code: str | None
    requests: int


@dataclass(slots=True)
class Call:
    """One request: its kind, when it was sent and answered, and whether it succeeded."""

    kind: str
    began: float
    ended: float
    ok: bool


@dataclass
class User:
    index: int
    msisdn: str
    token: str
    card: CardSim
    terminal: dict[str, Any]
    stan: int = 0


@dataclass
class State:
    plan: dict[str, Any]
    users: list[User]
    merchants: list[MerchantAuth]
    done: list[Done] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    stop_at: float = math.inf
    began: float = 0.0
    window: tuple[float, float] = (math.inf, math.inf)
    retries: int = 0
    rate: float | None = None  # open loop: flows started per second; None: closed loop


def _code(resp: Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return f"http_{resp.status_code}"
    code = body.get("code") if isinstance(body, dict) else None
    return f"{resp.status_code}:{code}" if code else f"http_{resp.status_code}"


def _idem() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


def _body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


async def _p2p(http: Connection, st: State, u: User, rng: random.Random
               ) -> tuple[str | None, int]:
    others = st.users
    to = others[(u.index + 1 + rng.randrange(len(others) - 1)) % len(others)].msisdn
    body = _body({"to_msisdn": to, "amount_fen": rng.randint(1, 500), "pin": st.plan["pin"]})
    r = await _call(st, "p2p", 201, http.post(
        "/v1/wallet/transfers", body, {"Authorization": f"Bearer {u.token}", **_idem()}))
    return (None if r.status_code == 201 else _code(r)), 1


async def _remote(http: Connection, st: State, u: User, rng: random.Random
                  ) -> tuple[str | None, int]:
    merchant = st.merchants[u.index % len(st.merchants)]
    path = "/v1/payments"
    body = _body({"out_trade_no": f"B{uuid.uuid4().hex}", "amount_fen": rng.randint(100, 5_000),
                  "subject": "benchmark order", "payer_msisdn": u.msisdn})
    r = await _call(st, "order-create", 201, http.post(
        path, body, {**merchant.headers("POST", path, body), **_idem()}))
    if r.status_code != 201:
        return "create " + _code(r), 1
    trade_no = r.json()["trade_no"]
    r = await _call(st, "confirm", 200, http.post(
        f"/v1/wallet/payments/{trade_no}/confirm", _body({"pin": st.plan["pin"]}),
        {"Authorization": f"Bearer {u.token}", **_idem()}))
    if r.status_code != 200:
        return "confirm " + _code(r), 2
    state = r.json().get("state")
    return (None if state == "paid" else f"confirm state {state}"), 2


async def _nfc(http: Connection, st: State, u: User, rng: random.Random
               ) -> tuple[str | None, int]:
    t = u.terminal
    u.stan = u.stan % 999_999 + 1
    amount = rng.randint(100, 3_000)  # below the no-PIN limit: a tap, as at a shop till
    ac = u.card.generate_ac(amount, unpredictable=secrets.token_hex(4).upper(),
                            date=dt.datetime.now(CST).strftime("%y%m%d"))
    x = ac.txn
    path = "/v1/terminal/authorisations"
    body = _body({
        "merchant_code": t["merchant_code"], "store_code": t["store_code"],
        "batch_no": t["batch_no"], "stan": f"{u.stan:06d}", "pan": u.card.pan,
        "psn": u.card.psn, "amount_fen": x.amount_fen, "other_fen": x.other_fen,
        "currency": x.currency, "country": x.country, "date": x.date,
        "txn_type": x.txn_type, "tvr": x.tvr, "aip": x.aip, "cvr": x.cvr,
        "unpredictable": x.unpredictable, "atc": x.atc,
        "arqc": ac.cryptogram.hex().upper()})
    r = await _call(st, "nfc", 200, http.post(
        path, body, {**t["auth"].headers("POST", path, body), **_idem()}))
    if r.status_code != 200:
        u.card.second_generate_ac(None, emv.ARC_DECLINED)
        return _code(r), 1
    answer = r.json()
    arpc = bytes.fromhex(answer["arpc"]) if answer.get("arpc") else None
    arc = bytes.fromhex(answer["arc"]) if answer.get("arc") else emv.ARC_DECLINED
    card_result = u.card.second_generate_ac(arpc, arc).kind
    if not answer.get("approved"):
        return f"declined {answer.get('response_code')}:{answer.get('reason')}", 1
    return (None if card_result == "TC" else "card refused the approval (ARPC)"), 1


RUNNERS = {"p2p": _p2p, "remote": _remote, "nfc": _nfc}


async def _call(st: State, kind: str, status: int, sent: Awaitable[Response]) -> Response:
    """Await one request (already built: signing is not part of its latency) and time it."""
    began = time.perf_counter()
    r = await sent
    st.calls.append(Call(kind, began, time.perf_counter(), r.status_code == status))
    return r


async def _user(http: Connection, st: State, u: User, flows: list[str],
                weights: list[float], seed: int) -> None:
    rng = random.Random(seed)
    clock = time.perf_counter
    while clock() < st.stop_at:
        await _flow(http, st, u, rng.choices(flows, weights)[0], rng, clock())


async def _flow(http: Connection, st: State, u: User, flow: str, rng: random.Random,
                began: float) -> None:
    """One flow by ``u``, its latency counted from ``began`` (when it was due to start)."""
    try:
        code, n = await RUNNERS[flow](http, st, u, rng)
    except TransportError as exc:
        code, n = f"transport {type(exc).__name__}", 1
    except Exception as exc:  # a bug in a flow: count it, keep the load going
        code, n = f"exception {type(exc).__name__}: {exc}"[:120], 1
    st.done.append(Done(flow, began, time.perf_counter(), code is None, code, n))


async def _arrivals(conns: list[Connection], st: State, flows: list[str],
                    weights: list[float], seed: int) -> None:
    """Open loop (k6's constant-arrival-rate): the k-th flow is due at ``k / rate`` seconds,
    whatever became of the earlier ones, and its latency runs from then, so a late start
    (a busy load generator, no idle user) counts against the server, not in its favour. A
    flow starts with the user idle longest; with none idle it is dropped (``DROPPED``)."""
    assert st.rate
    rng = random.Random(seed)
    idle: deque[tuple[Connection, User, random.Random]] = deque(
        (c, u, random.Random(seed + 1 + u.index)) for c, u in zip(conns, st.users, strict=True))
    running: set[asyncio.Task[None]] = set()

    async def one(conn: Connection, u: User, own: random.Random, flow: str, due: float
                  ) -> None:
        try:
            await _flow(conn, st, u, flow, own, due)
        finally:
            idle.append((conn, u, own))

    k = 0
    while (due := st.began + k / st.rate) < st.stop_at:
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        flow = rng.choices(flows, weights)[0]
        if idle:
            task = asyncio.create_task(one(*idle.popleft(), flow, due))
            running.add(task)
            task.add_done_callback(running.discard)
        else:
            st.done.append(Done(flow, due, due, False, DROPPED, 0))
        k += 1
    if running:
        await asyncio.gather(*running, return_exceptions=True)


def _progress(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def _users(plan: dict[str, Any]) -> list[User]:
    # A rerun against the same world starts past the last run's counters (``run_offset``):
    # terminals refuse a used STAN, cards' ATCs only go up.
    offset = int(plan.get("run_offset", 0))
    out = []
    for i, w in enumerate(plan["wallets"][: plan["users"]]):
        c, t = w["card"], w["terminal"]
        card = CardSim(c["pan"], c["psn"], bytes.fromhex(c["key_hex"]),
                       atc=c.get("atc", 0) + offset)
        term = {**t, "auth": TerminalAuth(t["terminal_id"], bytes.fromhex(t["key_hex"]))}
        out.append(User(i, w["msisdn"], w["token"], card, term, stan=offset))
    return out


async def run(plan: dict[str, Any]) -> dict[str, Any]:
    """Drive the load the plan describes; return the raw figures (see ``summarise``)."""
    mix: dict[str, float] = {k: float(v) for k, v in plan["mix"].items() if float(v) > 0}
    flows, weights = list(mix), list(mix.values())
    users = _users(plan)
    if len(users) < 2 and "p2p" in mix:
        raise SystemExit("p2p needs at least two users")
    st = State(plan, users, [MerchantAuth(m["key_id"], m["secret"])
                             for m in plan["merchants"]], rate=plan.get("rate") or None)
    url = urlsplit(plan["base_url"])
    conns = [Connection(url.hostname or "127.0.0.1", url.port or 80, REQUEST_TIMEOUT_S)
             for _ in users]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        began = st.began = time.perf_counter()
        warm_end = began + plan["warmup"]
        st.window = (warm_end, warm_end + plan["seconds"])
        st.stop_at = st.window[1]
        if st.rate:
            tasks = [asyncio.create_task(_arrivals(conns, st, flows, weights, plan["seed"]))]
        else:
            tasks = [asyncio.create_task(_user(c, st, u, flows, weights, plan["seed"] + u.index))
                     for c, u in zip(conns, users, strict=True)]
        cpu_window: list[float] = []
        while (now := time.perf_counter()) < st.stop_at:
            measuring = now >= warm_end
            if measuring and not cpu_window:
                cpu_window.append(time.process_time())
            counted = sum(1 for d in st.done if d.ok and d.ended >= warm_end) if measuring else 0
            _progress(elapsed=round(now - began, 2), measuring=measuring, payments=counted)
            await asyncio.sleep(min(0.5, max(0.01, st.stop_at - now)))
        cpu_window.append(time.process_time())
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        st.retries = sum(c.retries for c in conns)
        for c in conns:
            c.close()
    result = summarise(st, flows)
    result["loadgen"] = {
        "cpu_s": round(time.process_time() - cpu0, 2),
        "wall_s": round(time.perf_counter() - wall0, 2),
        "cpu_share_in_window": round((cpu_window[-1] - cpu_window[0]) / plan["seconds"], 3)
        if len(cpu_window) == 2 else None,
    }
    result["atc"] = {u.card.pan: u.card.atc for u in users}
    return result


def _stats(done: list[Done], seconds: float) -> dict[str, Any]:
    ok = sorted(d.ended - d.began for d in done if d.ok)
    n = len(done)
    dropped = sum(1 for d in done if d.code == DROPPED)
    return {
        "completed": len(ok), "failed": n - len(ok) - dropped, "dropped": dropped,
        "per_s": round(len(ok) / seconds, 1),
        "requests": sum(d.requests for d in done),
        "success_rate": round(len(ok) / n, 5) if n else None,
        "p50_ms": round(percentile(ok, 50) * 1000, 2),
        "p95_ms": round(percentile(ok, 95) * 1000, 2),
        "p99_ms": round(percentile(ok, 99) * 1000, 2),
        "max_ms": round(ok[-1] * 1000, 2) if ok else 0.0,
        "errors": dict(Counter(d.code for d in done if d.code)),
    }


CDF_AT = (1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.9, 100)


def _latency(calls: list[Call]) -> dict[str, Any]:
    ok = sorted(c.ended - c.began for c in calls if c.ok)
    return {"count": len(calls), "failed": len(calls) - len(ok),
            "p50_ms": round(percentile(ok, 50) * 1000, 2),
            "p95_ms": round(percentile(ok, 95) * 1000, 2),
            "p99_ms": round(percentile(ok, 99) * 1000, 2),
            "cdf_ms": [[q, round(percentile(ok, q) * 1000, 2)] for q in CDF_AT] if ok else []}


def timeline(st: State, step: float = 1.0) -> list[dict[str, Any]]:
    """Second by second from the start (warm-up included): payments (flows that succeeded)
    per second, and the p50 and p99 of the requests answered in that second."""
    end = st.window[1]
    if not math.isfinite(end) or end <= st.began:
        return []
    bins = math.ceil((end - st.began) / step - 1e-9)
    flows = [0] * bins
    lat: list[list[float]] = [[] for _ in range(bins)]
    for d in st.done:
        if d.ok and st.began <= d.ended < end:
            flows[int((d.ended - st.began) / step)] += 1
    for c in st.calls:
        if c.ok and st.began <= c.ended < end:
            lat[int((c.ended - st.began) / step)].append(c.ended - c.began)
    out = []
    for i in range(bins):
        got = sorted(lat[i])
        out.append({"t": round((i + 1) * step, 3), "payments_per_s": round(flows[i] / step, 1),
                    "p50_ms": round(percentile(got, 50) * 1000, 2),
                    "p99_ms": round(percentile(got, 99) * 1000, 2)})
    return out


def summarise(st: State, flows: list[str]) -> dict[str, Any]:
    """Figures over the flows of the measured window, per flow and overall, and over the
    requests answered inside it, per kind and overall; errors are also counted over the
    whole run (warm-up and tail included). A closed loop's window holds the flows that
    ended inside it; an open loop's the flows that were due inside it, each followed to
    its end, so that a flow the server is slow to finish still counts, at its latency."""
    start, end = st.window
    seconds = end - start
    window = [d for d in st.done if start <= (d.began if st.rate else d.ended) < end]
    calls = [c for c in st.calls if start <= c.ended < end]
    kinds = sorted({c.kind for c in calls})
    all_errors = Counter(d.code for d in st.done if d.code)
    overall = _stats(window, seconds)
    return {
        "seconds": round(seconds, 3),
        "load": {"kind": "open", "offered_per_s": st.rate} if st.rate else {"kind": "closed"},
        "overall": overall,
        "flows": {f: _stats([d for d in window if d.flow == f], seconds) for f in flows},
        "request_latency": {"overall": _latency(calls),
                            **{k: _latency([c for c in calls if c.kind == k]) for k in kinds}},
        "requests_per_s": round(overall["requests"] / seconds, 1),
        "timeline": timeline(st),
        "flows_total": len(st.done),
        "failed_total": sum(1 for d in st.done if not d.ok and d.code != DROPPED),
        "dropped_total": sum(1 for d in st.done if d.code == DROPPED),
        "errors_total": dict(all_errors),
        "retries": st.retries,
    }


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        raise SystemExit("usage: python -m paycell.bench.loadgen PLAN.json RESULT.json")
    plan = json.loads(Path(args[0]).read_text())
    settle_heap()  # a full collection's pause would count as latency of every flow in flight
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        result = asyncio.run(run(plan))
    else:
        result = uvloop.run(run(plan))
    Path(args[1]).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
