"""The bank test with faults (after Jepsen's "bank" workload): ``make chaos``, ``paycell chaos``.

N wallets hold a known total. Client threads send P2P transfers between them over HTTP, each
with its own Idempotency-Key, and retry a request whose answer they did not get (timeout,
connection refused, 5xx) with the same key. Reader threads take snapshots of every wallet
balance (one SELECT: ``GET /v1/ledger/balances?code=100``). A fault thread, at random
intervals, SIGKILLs the API server's whole process group and starts it again, or stops
PostgreSQL with ``pg_ctl stop -m immediate`` (a crash: no checkpoint, WAL replay on start)
and starts it again. Traffic goes only to 127.0.0.1 and is bounded in time.

Checked afterwards, on the database itself:
- every snapshot summed to the total and showed no negative balance;
- every transfer a client saw acknowledged (201) is in the ledger exactly once, with its
  amount; every transfer refused with a 4xx is not;
- the ledger holds no P2P transfer that no client sent (ids derive from the client's keys);
- ``paycell audit`` finds the journal and the balances consistent.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from paycell.bench.svgchart import Chart, Series, line_chart
from paycell.devtools.pgserver import ThrowawayPostgres, free_port

WALLET_CODE = 100
OPERATOR_KEY = "chaos-operator-key"
PIN = "135790"
FUND_FEN = 100_000  # 1,000.00 CNY a wallet
TIERS = [{"tier": 0, "name": "chaos", "balance_cap_fen": 10**12, "per_transaction_fen": 10**12,
          "daily_fen": 10**12, "monthly_fen": 10**12}]
RETRY_STATUSES = {500, 502, 503, 504}


@dataclass
class Op:
    client: int
    sender: int  # index into the wallets
    key: str
    amount_fen: int
    transfer_id: str
    outcome: str = "unknown"  # ok | failed | unknown
    code: str | None = None
    attempts: int = 0
    answered_at: float | None = None  # time.monotonic() of its definite answer


@dataclass
class Report:
    seconds: float
    wallets: int
    clients: int
    total_fen: int
    ops: dict[str, int] = field(default_factory=dict)
    failure_codes: dict[str, int] = field(default_factory=dict)
    unknown_landed: int = 0
    retries: int = 0
    # Why requests were retried: "no answer" (timeout, refused, reset) or the status and
    # code. A 500 here is a bug: a database going away answers 503 database_unavailable.
    retried_after: dict[str, int] = field(default_factory=dict)
    snapshots: int = 0
    snapshot_errors: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    audit_ok: bool = False
    transfers_in_ledger: int = 0
    # Second by second from the start of the traffic: transfers acknowledged and refused.
    timeline: list[dict[str, float]] = field(default_factory=list)
    # (injected, back up: the API answering /health or PostgreSQL started), seconds of
    # traffic, and the kind
    fault_log: list[tuple[float, float, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations and self.audit_ok


class ApiServer:
    """``paycell.api.serve`` (uvicorn) with ``workers`` processes in a session of its own,
    so that one killpg takes the supervisor and every worker."""

    def __init__(self, env: dict[str, str], port: int, workers: int, log: Path,
                 app: str = "paycell.api.app:create_app", factory: bool = True) -> None:
        self.env, self.port, self.workers, self.log = env, port, workers, log
        self.app, self.factory = app, factory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "paycell.api.serve", self.app,
                 *(["--factory"] if self.factory else []),
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers",
                 str(self.workers), "--log-level", "warning"],
                env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"the API server exited; see {self.log}")
            time.sleep(0.1)
        raise RuntimeError(f"the API server did not answer /health in {timeout_s:.0f} s")

    def kill(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None


def _setup(url: str, wallets: int, settings_env: dict[str, str]) -> tuple[list[Any], int]:
    """Open the wallets and fund them through the ledger; returns (subscribers, total)."""
    from paycell.config import Settings
    from paycell.context import build_context
    from paycell.db import make_engine
    from paycell.ledger import chart
    from paycell.ledger.model import TransferRequest
    from paycell.migrate import upgrade
    from paycell.subscribers.service import open_account

    upgrade(url)
    settings = Settings(database_url=url, kyc_tiers_json=settings_env["PAYCELL_KYC_TIERS_JSON"],
                        operator_api_key=OPERATOR_KEY)
    engine = make_engine(url)
    try:
        ctx = build_context(engine, settings=settings)
        source = chart.system_account(ctx.ledger, chart.Code.BANK_CLEARING, "chaos")
        subs = [open_account(ctx, f"1390000{i:04d}", PIN) for i in range(wallets)]
        results = ctx.ledger.post([
            TransferRequest(id=f"chaos-fund:{s.id}", debit_account_id=source.id,
                            credit_account_id=s.wallet_account_id, amount=FUND_FEN,
                            code=int(chart.TransferCode.TOPUP_BANK), ref="chaos funding")
            for s in subs])
        if not all(r.ok for r in results):
            raise RuntimeError("funding the chaos wallets failed")
        return subs, FUND_FEN * wallets
    finally:
        engine.dispose()


def _login(base: str, msisdn: str) -> str:
    r = httpx.post(base + "/v1/wallet/login", json={"msisdn": msisdn, "pin": PIN},
                   headers={"Idempotency-Key": f"chaos-login-{msisdn}"}, timeout=30.0)
    r.raise_for_status()
    token: str = r.json()["access_token"]
    return token


def run(seconds: float = 60.0, *, wallets: int = 16, clients: int = 6, readers: int = 1,
        workers: int = 2, fault_every: tuple[float, float] = (4.0, 9.0), faults: bool = True,
        retry_window_s: float = 45.0, seed: int | None = None,
        progress: Callable[[str], None] | None = None, workdir: Path | None = None) -> Report:
    """Run the bank test for ``seconds`` of traffic and check it; returns the report."""
    from paycell.funding.cash_rules import p2p_ref

    say = progress or (lambda _text: None)
    rng = random.Random(seed)
    work = workdir or Path("var") / "chaos"
    work.mkdir(parents=True, exist_ok=True)
    with ThrowawayPostgres(durable=True) as pg:
        url = pg.create_database("chaos")
        env = {**os.environ, "PAYCELL_DATABASE_URL": url,
               "PAYCELL_KYC_TIERS_JSON": json.dumps(TIERS),
               "PAYCELL_OPERATOR_API_KEY": OPERATOR_KEY, "PAYCELL_RUN_WORKERS": "0",
               "PAYCELL_SIMULATORS": "false", "PAYCELL_ACCESS_TOKEN_TTL_S": "86400"}
        say("opening and funding the wallets")
        subs, total = _setup(url, wallets, env)
        server = ApiServer(env, free_port(), workers, work / "server.log")
        server.start()
        say("logging the wallets in")
        tokens = [_login(server.url, s.msisdn) for s in subs]
        report = Report(seconds=seconds, wallets=wallets, clients=clients, total_fen=total)
        ops: list[Op] = []
        lock = threading.Lock()
        stop_traffic = threading.Event()
        stop_faults = threading.Event()
        faults_done: Counter[str] = Counter()
        retries: Counter[str] = Counter()

        # Each thread its own generator, seeded now: the schedule replays from --seed.
        client_seeds = [rng.random() for _ in range(clients)]
        frng = random.Random(rng.random())

        def client(i: int) -> None:
            crng = random.Random(client_seeds[i])
            with httpx.Client(base_url=server.url, timeout=3.0) as http:
                n = 0
                while not stop_traffic.is_set():
                    s, r = crng.sample(range(wallets), 2)
                    key = f"chaos-{i}-{n}"
                    n += 1
                    op = Op(i, s, key, crng.randint(1, 3_000),
                            f"p2p:{p2p_ref(subs[s].id, key)}")
                    with lock:
                        ops.append(op)
                    _send(http, op, subs[r].msisdn, tokens[s], retry_window_s, retries)

        def reader() -> None:
            with httpx.Client(base_url=server.url, timeout=3.0,
                              headers={"X-API-Key": OPERATOR_KEY}) as http:
                while not stop_traffic.is_set():
                    try:
                        got = http.get("/v1/ledger/balances", params={"code": WALLET_CODE})
                    except httpx.HTTPError:
                        report.snapshot_errors += 1
                        time.sleep(0.2)
                        continue
                    if got.status_code != 200:
                        report.snapshot_errors += 1
                        time.sleep(0.2)
                        continue
                    snap = got.json()
                    report.snapshots += 1
                    if snap["total_fen"] != total or snap["negative"]:
                        report.violations.append(
                            f"snapshot: total {snap['total_fen']} (expected {total}), "
                            f"{snap['negative']} negative")
                    time.sleep(0.05)

        def injector() -> None:
            while not stop_faults.wait(frng.uniform(*fault_every)):
                kind = frng.choice(("kill_api", "crash_postgres"))
                say(f"fault: {kind}")
                injected = time.monotonic() - began
                if kind == "kill_api":
                    server.kill()
                    time.sleep(frng.uniform(0.0, 1.0))
                    server.start()
                else:
                    pg.crash()
                    time.sleep(frng.uniform(0.2, 1.5))
                    pg.restart()
                faults_done[kind] += 1
                report.fault_log.append(
                    (round(injected, 2), round(time.monotonic() - began, 2), kind))

        threads = [threading.Thread(target=client, args=(i,), daemon=True)
                   for i in range(clients)]
        threads += [threading.Thread(target=reader, daemon=True) for _ in range(readers)]
        fault_thread = threading.Thread(target=injector, daemon=True)
        say(f"traffic for {seconds:.0f} s" + (" with faults" if faults else ""))
        began = time.monotonic()
        for t in threads:
            t.start()
        if faults:
            fault_thread.start()
        time.sleep(seconds)
        stop_faults.set()
        if faults:
            fault_thread.join()
        stop_traffic.set()
        say("waiting for the clients' last requests")
        for t in threads:
            t.join()
        server.kill()
        report.faults = dict(faults_done)
        report.retried_after = dict(retries)
        report.retries = sum(retries.values())
        report.timeline = _timeline(ops, began, time.monotonic())
        say("checking the ledger")
        _check(url, ops, total, report)
    return report


def _send(http: httpx.Client, op: Op, to: str, token: str, window_s: float,
          retries: Counter[str]) -> None:
    """Send one transfer, retrying with the same key until a definite answer or the window
    closes (then its outcome stays unknown)."""
    give_up = time.monotonic() + window_s
    body = {"to_msisdn": to, "amount_fen": op.amount_fen, "pin": PIN}
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": op.key}
    delay = 0.05
    while True:
        op.attempts += 1
        try:
            resp = http.post("/v1/wallet/transfers", json=body, headers=headers)
        except httpx.HTTPError:
            resp = None
        if resp is not None and resp.status_code == 201:
            op.outcome, op.answered_at = "ok", time.monotonic()
            return
        cause = "no answer"
        if resp is not None:
            code = _code(resp)
            if resp.status_code not in RETRY_STATUSES and code != "idempotency_key_in_progress":
                op.outcome, op.code, op.answered_at = "failed", code, time.monotonic()
                return
            cause = f"{resp.status_code} {code}"
        if time.monotonic() > give_up:
            return
        with _retries_lock:
            retries[cause] += 1
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


_retries_lock = threading.Lock()


def _timeline(ops: list[Op], began: float, ended: float) -> list[dict[str, float]]:
    """Transfers acknowledged and refused in each second since ``began``."""
    bins = max(1, math.ceil(ended - began))
    ok, refused = [0] * bins, [0] * bins
    for op in ops:
        if op.answered_at is None:
            continue
        i = min(bins - 1, max(0, int(op.answered_at - began)))
        (ok if op.outcome == "ok" else refused)[i] += 1
    return [{"t": float(i + 1), "acknowledged": ok[i], "refused": refused[i]}
            for i in range(bins)]


def _code(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("code") or resp.status_code)
    except ValueError:
        return str(resp.status_code)


def _check(url: str, ops: list[Op], total: int, report: Report) -> None:
    from paycell.db import make_engine
    from paycell.ledger import chart
    from paycell.ledger.audit import audit
    from paycell.ledger.store import Ledger
    from paycell.ledger.tables import transfers

    engine = make_engine(url)
    try:
        ledger = Ledger(engine)
        wallets = ledger.accounts_by_code(WALLET_CODE)
        final = sum(a.balance for a in wallets)
        if final != total:
            report.violations.append(f"final wallets total {final}, expected {total}")
        report.violations += [f"wallet {a.id} negative: {a.balance}"
                              for a in wallets if a.balance < 0]
        with engine.connect() as conn:
            landed = {r.id: r.amount for r in conn.execute(
                select(transfers.c.id, transfers.c.amount)
                .where(transfers.c.code == int(chart.TransferCode.P2P)))}
        report.transfers_in_ledger = len(landed)
        sent = {op.transfer_id for op in ops}
        for op in ops:
            got = landed.get(op.transfer_id)
            if op.outcome == "ok" and got != op.amount_fen:
                report.violations.append(f"acknowledged {op.key} ({op.amount_fen} fen) "
                                         f"is in the ledger as {got}")
            elif op.outcome == "failed" and got is not None:
                report.violations.append(f"refused {op.key} ({op.code}) moved {got} fen")
            elif op.outcome == "unknown" and got is not None:
                report.unknown_landed += 1
        report.violations += [f"transfer {tid} was never sent by a client"
                              for tid in landed.keys() - sent]
        report.ops = dict(Counter(op.outcome for op in ops))
        report.failure_codes = dict(Counter(op.code for op in ops if op.code))
        result = audit(engine)
        report.audit_ok = result.ok
        if not result.ok:
            report.violations += [f"audit: {c.name}: {c.detail}" for c in result.checks
                                  if not c.ok]
    finally:
        engine.dispose()


FAULT_LABELS = {"kill_api": "API killed", "crash_postgres": "PostgreSQL crashed"}


def chart(report: Report) -> Chart:
    """Transfers acknowledged and refused per second, each fault a dashed line."""
    return Chart(
        "Bank test: transfers per second under faults", "seconds of traffic",
        "transfers per second",
        [Series("acknowledged", [(p["t"], p["acknowledged"]) for p in report.timeline]),
         Series("refused (4xx)", [(p["t"], p["refused"]) for p in report.timeline])],
        [(t, FAULT_LABELS.get(kind, kind)) for t, _, kind in report.fault_log])


def write_json(report: Report, path: Path) -> None:
    """The figures as JSON at ``path``, and their chart beside it (``.svg``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**asdict(report), "ok": report.ok}, indent=2) + "\n")
    path.with_suffix(".svg").write_text(line_chart(chart(report)))
