"""SIGKILL at a random moment loses nothing the ledger acknowledged.

A child process (``crash_child.py``) posts batches for ever, one thread through
``Ledger.post`` and three through a shared ``Batcher``, logging (fsynced) each batch before
the call and each result after it. The parent kills it with SIGKILL 0.2-1.5 s after it
starts writing, five rounds in a row; each new child first re-posts the batches that were
in flight at the kill and a sample of what was acknowledged (an idempotent retry after a
crash), then carries on with new ids. A last child only re-posts, and exits.

Then: every acknowledged transfer is in the journal exactly once; the journal holds nothing
that was never sent; a retry of an acknowledged id says ``exists`` (never ``created``
again); an id acknowledged as failed was not written; and ``audit`` is clean.
"""

from __future__ import annotations

import json
import random
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from helpers import tx
from sqlalchemy import Engine, text

from paycell.ledger import Ledger
from paycell.ledger.audit import audit
from paycell.ledger.chart import Code, open_account, system_account

CHILD = Path(__file__).with_name("crash_child.py")
ROUNDS = 5
N_WALLETS = 5
FUND_EACH = 30_00  # small against 30.00 payments and 20.00 holds: refusals happen
OK = ("created", "exists")


def _chart(ledger: Ledger) -> dict[str, Any]:
    source = system_account(ledger, Code.BANK_CLEARING, "icbc").id
    fee = system_account(ledger, Code.REVENUE_FEES).id
    wallets = [open_account(ledger, f"wallet:{i}", Code.WALLET).id for i in range(N_WALLETS)]
    assert all(r.ok for r in ledger.post([tx(f"fund:{w}", source, w, FUND_EACH)
                                          for w in wallets]))
    return {"source": source, "fee": fee, "wallets": wallets}


def _read_log(path: Path) -> list[dict[str, Any]]:
    """The child's log; a last line cut short by the kill (no newline yet) is dropped."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    return [json.loads(line) for line in lines[:-1]]  # after the last "\n": partial or ""


def _start(args: list[str], stderr: Path) -> subprocess.Popen[str]:
    with open(stderr, "w") as err:
        return subprocess.Popen([sys.executable, str(CHILD), *args], stdout=subprocess.PIPE,
                                stderr=err, text=True)


def _wait_for(proc: subprocess.Popen[str], word: str, stderr: Path) -> None:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)  # a safety net against a hang
    line = proc.stdout.readline() if ready else ""
    assert line.strip() == word, f"child said {line!r}; stderr:\n{stderr.read_text()}"


def test_sigkill_at_random_moments_loses_no_acknowledged_transfer(
    engine: Engine, db_url: str, db_backend: str, tmp_path: Path,
) -> None:
    ledger = Ledger(engine)
    chart = _chart(ledger)
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    started = time.monotonic()
    retry: list[str] = []
    kills: list[str] = []
    for rnd in range(1, ROUNDS + 2):
        last = rnd == ROUNDS + 1  # the last child only re-posts, then exits by itself
        log, err = tmp_path / f"round{rnd}.jsonl", tmp_path / f"round{rnd}.stderr"
        retry_file = tmp_path / f"retry{rnd}.json"
        retry_file.write_text(json.dumps(retry))
        args = [db_url, json.dumps(chart), str(log), str(rnd), str(seed), str(retry_file)]
        proc = _start([*args, "--retry-only"] if last else args, err)
        try:
            _wait_for(proc, "done" if last else "ready", err)
            if last:
                assert proc.wait(timeout=60) == 0, err.read_text()
            else:
                delay = rng.uniform(0.2, 1.5)
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)
                assert proc.wait(timeout=60) == -signal.SIGKILL, err.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        assert "Traceback" not in err.read_text(), err.read_text()
        if last:
            break
        # Next round re-posts what was in flight at the kill, and a sample of what was not.
        entries = _read_log(log)
        acked = {e["b"] for e in entries if e["t"] != "sent"}
        in_flight = [u for e in entries if e["t"] == "sent" and e["b"] not in acked
                     for u in e["units"]]
        units_ok = [u for e in entries if e["t"] == "sent" and e["b"] in acked
                    for u in e["units"]]
        retry = in_flight + rng.sample(units_ok, min(30, len(units_ok)))
        n_acked = sum(len(e["r"]) for e in entries if e["t"] == "ack")
        kills.append(f"round {rnd}: killed {delay:.2f}s after ready, {n_acked} acknowledged, "
                     f"{len(in_flight)} units in flight")

    # -- what the children were told, in order -----------------------------------------
    sent: set[str] = set()
    last_ack: dict[str, str] = {}  # id -> the last status the ledger acknowledged
    unresolved: set[str] = set()  # ids sent whose batch was never acknowledged
    violations: list[str] = []
    retried_ok = in_flight_committed = in_flight_not = 0
    for rnd in range(1, ROUNDS + 2):
        entries = _read_log(tmp_path / f"round{rnd}.jsonl")
        acked_batches = {e["b"] for e in entries if e["t"] != "sent"}
        for e in entries:
            if e["t"] == "sent":
                sent.update(e["ids"])
                if e["b"] not in acked_batches:
                    unresolved.update(e["ids"])
                continue
            for tid, status, code in e["r"]:
                before = last_ack.get(tid)
                if e["t"] == "retry":
                    if before in OK and status != "exists":
                        violations.append(f"round {rnd}: acknowledged {tid} retried: {status}"
                                          f" ({code})")
                    if before == "failed" and tid not in unresolved and status == "exists":
                        violations.append(f"round {rnd}: {tid} was refused, yet exists")
                    retried_ok += before in OK
                    if before is None and tid in unresolved:
                        # In flight at the kill: "exists" means it committed before the ack.
                        in_flight_committed += status == "exists"
                        in_flight_not += status != "exists"
                unresolved.discard(tid)
                last_ack[tid] = status
    assert violations == []

    with engine.connect() as c:
        rows = c.execute(text("SELECT id, COUNT(*) FROM ledger_transfers GROUP BY id")).all()
    in_db = Counter({r[0]: r[1] for r in rows})
    fund_ids = {f"fund:{w}" for w in chart["wallets"]}
    acked_ok = {tid for tid, s in last_ack.items() if s in OK}
    refused = {tid for tid, s in last_ack.items() if s == "failed"} - unresolved
    assert [tid for tid, n in in_db.items() if n != 1] == []
    assert sorted(acked_ok - set(in_db))[:10] == [], "acknowledged, then lost"
    assert sorted(set(in_db) - sent - fund_ids)[:10] == [], "in the journal, never sent"
    assert sorted(refused & set(in_db))[:10] == [], "refused, yet written"
    report = audit(engine)
    assert report.ok, [(ch.name, ch.detail) for ch in report.checks if not ch.ok]
    assert retried_ok > 0
    print(f"\n[crash {db_backend} seed={seed}] rounds={ROUNDS} sent={len(sent)} "
          f"acknowledged={len(acked_ok)} committed={len(in_db)} "
          f"refused={len(refused)} retried-after-ack={retried_ok} "
          f"in-flight at kill: committed={in_flight_committed} not={in_flight_not} "
          f"wall={time.monotonic() - started:.1f}s")
    for k in kills:
        print("  " + k)
