"""Many writers at once: the ledger stays balanced, idempotent and auditable.

Three shapes of concurrency, each hammering five wallets and the one hot fee account with
random linked pairs (wallet -> wallet, wallet -> fee 1 fen), asking for more than the
wallets hold so that overdrafts happen, re-posting earlier ids (idempotent retries),
racing on ids every writer posts with the same body, placing holds that are posted (with a
fee leg) or voided, and expiring holds under a clock two hours ahead while their owners
try to post them:

- six OS processes (``spawn``), each with its own engine and ``Ledger`` (PostgreSQL: row
  locks across processes);
- six threads in one process, each calling ``Ledger.post`` itself;
- twelve threads handing everything to one ``Batcher`` (group commit).

Afterwards: money is conserved, no wallet below zero, every id a writer was told was
created exists exactly once and nothing else does, the fee account holds one fen per fee
leg committed, no hold is left pending, and ``audit`` is clean. A writer that dies, or
sees a result the rules do not allow, fails the test.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import random
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from helpers import tx, void_hold
from sqlalchemy import Engine, text

from paycell.clock import ManualClock
from paycell.db import make_engine
from paycell.ledger import Ledger, TransferFlags, TransferRequest, TransferResult
from paycell.ledger.audit import audit
from paycell.ledger.batcher import Batcher
from paycell.ledger.chart import Code, open_account, system_account

LINKED, PENDING = int(TransferFlags.LINKED), int(TransferFlags.PENDING)
TWO_PHASE = int(TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING)
N_WALLETS = 5
FUND_EACH = 100_00  # fen per wallet; transfers ask for up to 60.00, so overdrafts happen
MAX_AMOUNT = 60_00
SHARED_EVERY = 15  # every writer posts the same "shared-<k>" transfer: an idempotency race
# Failures the rules allow here. Anything else (a conflict on our own retry, a hold not
# found, ...) is an anomaly. A retry of a post or void that failed the first time may also
# find the hold settled since by another request.
ALLOWED_FAILURES = {"overdraft", "linked_event_failed", "pending_expired"}
ALLOWED_ON_RETRY = ALLOWED_FAILURES | {"pending_already_posted", "pending_already_voided"}

Post = Callable[[Sequence[TransferRequest]], list[TransferResult]]


@dataclass(frozen=True)
class Chart:
    source: int
    fee: int
    wallets: tuple[int, ...]


def setup_chart(ledger: Ledger) -> Chart:
    source = system_account(ledger, Code.BANK_CLEARING, "icbc").id
    fee = system_account(ledger, Code.REVENUE_FEES).id
    wallets = tuple(open_account(ledger, f"wallet:{i}", Code.WALLET).id
                    for i in range(N_WALLETS))
    results = ledger.post([tx(f"fund:{w}", source, w, FUND_EACH) for w in wallets])
    assert all(r.status == "created" for r in results)
    return Chart(source, fee, wallets)


def _late_clock() -> ManualClock:
    """A clock two hours ahead: holds with a one-hour timeout are due under it."""
    return ManualClock(datetime.now(UTC) + timedelta(hours=2))


# -- one writer's workload (runs in a process or a thread) --------------------------------


def workload(
    post: Post, expire: Callable[[], int] | None, me: int, chart: Chart, seed: int,
    pairs: int,
) -> dict[str, Any]:
    """Post ``pairs`` random linked pairs plus retries, holds and shared ids; report."""
    rng = random.Random(seed * 1_000 + me)
    known: dict[str, Any] = {}  # ids we were told exist -> the transfer we were shown
    created: list[str] = []  # ids we were told *we* created
    shared: dict[str, str] = {}  # shared id -> the status our first post got
    history: list[list[TransferRequest]] = []
    open_holds: dict[str, int] = {}  # our pending holds -> amount
    anomalies: list[str] = []
    failures: Counter[str] = Counter()
    ops: Counter[str] = Counter()
    expired = 0

    def submit(reqs: list[TransferRequest], kind: str, retry: bool = False) -> None:
        ops[kind] += 1
        results = post(reqs)
        if len(results) != len(reqs):
            anomalies.append(f"{len(reqs)} requests, {len(results)} results")
            return
        if not retry:
            history.append(reqs)
        statuses = {r.status for r in results}
        if len(reqs) > 1 and "failed" in statuses and statuses != {"failed"}:
            anomalies.append(f"linked chain half applied: {[(r.id, r.status) for r in results]}")
        for req, res in zip(reqs, results, strict=True):
            if res.id != req.id:
                anomalies.append(f"result for {res.id!r} in the place of {req.id!r}")
            if res.status == "created":
                if req.id in known:
                    anomalies.append(f"{req.id} created twice")
                known[req.id] = res.transfer
                created.append(req.id)
                if req.flags & PENDING:
                    open_holds[req.id] = req.amount or 0
                if req.flags & TWO_PHASE:
                    open_holds.pop(req.pending_id or "", None)
            elif res.status == "exists":
                prior = known.get(req.id)
                if prior is None and not req.id.startswith("shared-"):
                    anomalies.append(f"{req.id}: 'exists' but we never created it")
                elif prior is not None and prior != res.transfer:
                    anomalies.append(f"{req.id}: retry shows {res.transfer}, first {prior}")
                known.setdefault(req.id, res.transfer)
            else:
                code = res.error.code if res.error is not None else "?"
                failures[code] += 1
                if req.id in known:
                    anomalies.append(f"{req.id} existed, but its retry failed with {code}")
                if code not in (ALLOWED_ON_RETRY if retry else ALLOWED_FAILURES):
                    anomalies.append(f"{req.id} failed with {code}: {res.error}")
                if code == "pending_expired":  # the expirer got there first
                    open_holds.pop(req.pending_id or "", None)
            if req.id.startswith("shared-") and not retry:
                shared[req.id] = res.status

    w = chart.wallets
    n = 0
    while ops["pair"] < pairs:
        n += 1
        roll = rng.random()
        if n % SHARED_EVERY == 0:
            k = n // SHARED_EVERY
            submit([tx(f"shared-{k}", w[k % N_WALLETS], w[(k + 1) % N_WALLETS], 1 + k % 7)],
                   "shared")
        elif roll < 0.10 and history:
            submit(rng.choice(history), "retry", retry=True)
        elif roll < 0.22:
            a, b = rng.sample(w, 2)
            timeout = rng.choice((0, 3600))  # 3600: the expirer may void it under us
            submit([tx(f"p{me}-{n}:hold", a, b, rng.randint(1, MAX_AMOUNT // 3), PENDING,
                       timeout=timeout)], "hold")
        elif roll < 0.32 and open_holds:
            hid = rng.choice(sorted(open_holds))
            if rng.random() < 0.6:
                amount = rng.randint(1, open_holds[hid])
                payer = known[hid].debit_account_id
                submit([TransferRequest(f"p{me}-{n}:post", flags=TransferFlags.POST_PENDING
                                        | TransferFlags.LINKED, pending_id=hid, amount=amount,
                                        ledger=None),
                        tx(f"p{me}-{n}:fee", payer, chart.fee, 1)], "post")
            else:
                submit([void_hold(f"p{me}-{n}:void", hid)], "void")
        else:
            a, b = rng.sample(w, 2)
            submit([tx(f"p{me}-{n}:mv", a, b, rng.randint(1, MAX_AMOUNT), LINKED),
                    tx(f"p{me}-{n}:fee", a, chart.fee, 1)], "pair")
        if expire is not None and n % 25 == 0:
            expired += expire()
    for hid in sorted(open_holds):  # leave nothing pending behind us
        submit([void_hold(f"p{me}-end:{hid}:void", hid)], "void")
    return {
        "me": me, "created": created, "shared": shared, "anomalies": anomalies,
        "failures": dict(failures), "ops": dict(ops), "expired": expired,
        "open_holds": sorted(open_holds),
    }


# -- the checks, common to every shape -----------------------------------------------------


def check_ledger(engine: Engine, chart: Chart, outs: list[dict[str, Any]]) -> dict[str, int]:
    for out in outs:
        assert out["anomalies"] == [], f"writer {out['me']}: {out['anomalies'][:5]}"
        assert out["open_holds"] == [], f"writer {out['me']} left holds pending"
    ledger = Ledger(engine)
    # Every owner voided what it still held; anything left is a bug, but release it first
    # so that the balance checks below still say something.
    leftover = Ledger(engine, _late_clock()).expire_holds()
    funded = FUND_EACH * N_WALLETS
    accts = ledger.accounts([chart.source, chart.fee, *chart.wallets])
    src, fee, wallets = accts[chart.source], accts[chart.fee], [accts[i] for i in chart.wallets]
    assert leftover == 0
    assert all(a.debits_pending == a.credits_pending == 0 for a in accts.values())
    # Conservation: whatever moved, the wallets and the fee account hold what was funded.
    assert sum(x.balance for x in wallets) + fee.balance == funded
    assert src.debits_posted - src.credits_posted == funded
    assert sum(a.credits_posted - a.debits_posted for a in accts.values()) == 0
    assert all(x.available >= 0 and x.balance >= 0 for x in wallets), [x.balance for x in wallets]

    reported = Counter(i for out in outs for i in out["created"])
    assert [i for i, c in reported.items() if c > 1] == [], "an id was created twice"
    with engine.connect() as c:
        rows = c.execute(text("SELECT id, COUNT(*) FROM ledger_transfers GROUP BY id")).all()
        fee_legs = c.execute(text("SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM"
                                  " ledger_transfers WHERE credit_account_id = :f"),
                             {"f": chart.fee}).one()
    in_db = {r[0]: r[1] for r in rows}
    assert all(n == 1 for n in in_db.values())
    fund_ids = {f"fund:{w}" for w in chart.wallets}
    expiries = {i for i in in_db if i.startswith("expire:")}
    # Every id a writer was told was created exists, and nothing else was written except
    # the funding and the expirer's voids (of holds that some writer created).
    assert set(reported) - set(in_db) == set(), "acknowledged ids missing from the journal"
    assert set(in_db) - set(reported) - fund_ids - expiries == set()
    assert {i.removeprefix("expire:") for i in expiries} <= set(reported)
    # Shared ids: created by exactly one writer if they exist at all.
    shared_created = Counter(i for out in outs for i, s in out["shared"].items()
                             if s == "created")
    for sid in {i for out in outs for i in out["shared"]}:
        assert shared_created[sid] == (1 if sid in in_db else 0), sid
    fee_reported = sum(1 for i in reported if i.endswith(":fee"))
    assert fee.credits_posted == fee_legs[0] == fee_legs[1] == fee_reported
    assert fee.debits_posted == 0

    report = audit(engine)
    assert report.ok, [(ch.name, ch.detail) for ch in report.checks if not ch.ok]
    failures: Counter[str] = Counter()
    for out in outs:
        failures.update(out["failures"])
    ops: Counter[str] = Counter()
    for out in outs:
        ops.update(out["ops"])
    figures = {
        "transfers": report.transfers, "fee_legs": fee_reported, "expired": len(expiries),
        "shared_created": sum(shared_created.values()), **{f"ops_{k}": v for k, v in ops.items()},
        **{f"failed_{k}": v for k, v in failures.items()},
    }
    return figures


# -- processes -----------------------------------------------------------------------------


def _process_main(
    db_url: str, me: int, chart: Chart, seed: int, pairs: int, events: Any, go: Any,
) -> None:
    """One writer process: its own engine and Ledger; waits for the start signal."""
    try:
        engine = make_engine(db_url)
        try:
            ledger = Ledger(engine)
            late = Ledger(engine, _late_clock())
            ledger.account(chart.fee)  # connect before the start line
            events.put(("ready", me, None))
            if not go.wait(120):
                raise RuntimeError("no start signal")
            expire = late.expire_holds if me < 2 else None
            out = workload(ledger.post, expire, me, chart, seed, pairs)
            out["retries"] = ledger.stats["retries"] + late.stats["retries"]
            out["transactions"] = ledger.stats["transactions"] + late.stats["transactions"]
            events.put(("done", me, out))
        finally:
            engine.dispose()
    except BaseException:
        events.put(("error", me, traceback.format_exc()))
        raise


N_PROCESSES = 6
PAIRS_PER_PROCESS = 300


@pytest.mark.postgres_only
def test_six_processes_hammering_five_wallets_and_the_fee_account(
    engine: Engine, db_url: str,
) -> None:
    chart = setup_chart(Ledger(engine))
    seed = random.randrange(1_000_000)
    ctx = mp.get_context("spawn")
    events = ctx.Queue()
    go = ctx.Event()
    procs = [ctx.Process(target=_process_main, name=f"ledger-writer-{me}", daemon=True,
                         args=(db_url, me, chart, seed, PAIRS_PER_PROCESS, events, go))
             for me in range(N_PROCESSES)]
    outs: dict[int, dict[str, Any]] = {}
    errors: dict[int, str] = {}
    ready = 0
    started = time.monotonic()
    for p in procs:
        p.start()
    try:
        deadline = time.monotonic() + 180  # a safety net against a hang, not a measure
        while len(outs) + len(errors) < N_PROCESSES and time.monotonic() < deadline:
            try:
                kind, me, payload = events.get(timeout=1)
            except queue.Empty:
                gone = [p.name for p in procs if p.exitcode not in (None, 0)]
                assert not gone, f"writer processes died: {gone}"
                continue
            if kind == "ready":
                ready += 1
                if ready == N_PROCESSES:
                    go.set()  # every writer connected: start together
            elif kind == "done":
                outs[me] = payload
            else:
                errors[me] = payload
        for p in procs:
            p.join(timeout=30)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    assert errors == {}, "\n".join(errors.values())
    assert len(outs) == N_PROCESSES, "a writer never reported (hung?)"
    assert [p.exitcode for p in procs] == [0] * N_PROCESSES
    figures = check_ledger(engine, chart, list(outs.values()))
    retries = sum(o["retries"] for o in outs.values())
    print(f"\n[processes seed={seed}] {figures} ledger retries={retries} "
          f"transactions={sum(o['transactions'] for o in outs.values())} "
          f"wall={time.monotonic() - started:.1f}s")


# -- threads -------------------------------------------------------------------------------


def _run_threads(
    n: int, make_post: Callable[[int], Post], expire: Callable[[], int], chart: Chart,
    seed: int, pairs: int,
) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(workload, make_post(me), expire if me < 2 else None, me, chart,
                               seed, pairs) for me in range(n)]
        return [f.result(timeout=180) for f in futures]  # re-raises a writer's exception


def test_threads_each_posting_directly(engine: Engine, db_backend: str) -> None:
    chart = setup_chart(Ledger(engine))
    seed = random.randrange(1_000_000)
    ledgers = [Ledger(engine) for _ in range(6)]
    late = Ledger(engine, _late_clock())
    started = time.monotonic()
    outs = _run_threads(6, lambda me: ledgers[me].post, late.expire_holds, chart, seed,
                        pairs=200)
    figures = check_ledger(engine, chart, outs)
    retries = sum(x.stats["retries"] for x in [*ledgers, late])
    print(f"\n[threads {db_backend} seed={seed}] {figures} ledger retries={retries} "
          f"wall={time.monotonic() - started:.1f}s")


@pytest.mark.parametrize("writers", [1, 2])
def test_threads_sharing_one_batcher(engine: Engine, db_backend: str, writers: int) -> None:
    chart = setup_chart(Ledger(engine))
    seed = random.randrange(1_000_000)
    ledger = Ledger(engine)
    batcher = Batcher(ledger, writers=writers)
    late = Ledger(engine, _late_clock())
    started = time.monotonic()
    try:
        outs = _run_threads(12, lambda me: batcher.post, late.expire_holds, chart, seed,
                            pairs=150)
    finally:
        batcher.close()
    figures = check_ledger(engine, chart, outs)
    print(f"\n[batcher {db_backend} seed={seed}] {figures} batches={batcher.batches} "
          f"submitted={batcher.transfers} "
          f"mean batch={batcher.transfers / max(batcher.batches, 1):.1f} "
          f"ledger retries={ledger.stats['retries'] + late.stats['retries']} "
          f"wall={time.monotonic() - started:.1f}s")


def test_an_id_twice_in_one_batch_is_answered_with_the_stored_transfer(engine: Engine) -> None:
    """Group commit puts concurrent retries of one id into one batch: the second is told
    ``exists`` and must be shown the transfer as stored (journal seq and hash included),
    exactly as a retry in a later batch is."""
    chart = setup_chart(Ledger(engine))
    ledger = Ledger(engine)
    a, b = chart.wallets[:2]
    first, again = ledger.post([tx("twice", a, b, 1), tx("twice", a, b, 1)])
    stored = ledger.transfer("twice")
    assert (first.status, again.status) == ("created", "exists")
    assert first.transfer == stored
    assert again.transfer == stored


def test_a_retry_racing_its_original_is_answered_exists_not_overdraft(
        engine: Engine) -> None:
    """The same transfer, emptying its wallet, posted by several callers at the same
    moment (a client retrying while its first attempt still runs): one creates it, every
    other is told it exists. None may be judged against the balance the first one moved."""
    import threading

    ledger = Ledger(engine)
    bank = system_account(ledger, Code.BANK_CLEARING, "race").id
    shop = open_account(ledger, "merchant_payable:race", Code.MERCHANT_PAYABLE).id
    for round_ in range(8):
        wallet = open_account(ledger, f"wallet:race:{round_}", Code.WALLET).id
        ledger.post_one(TransferRequest(f"fund-{round_}", bank, wallet, 5_000))
        drain = TransferRequest(f"drain-{round_}", wallet, shop, 5_000)
        gate = threading.Barrier(4)

        def post(_: int, drain: TransferRequest = drain, gate: threading.Barrier = gate
                 ) -> TransferResult:
            gate.wait()
            return ledger.post([drain])[0]

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(post, range(4)))
        assert sorted(r.status for r in results) == ["created", "exists", "exists", "exists"], [
            (r.status, r.error) for r in results]
        assert ledger.account(wallet).balance == 0
