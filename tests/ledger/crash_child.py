"""The victim of tests/ledger/test_crash.py: posts transfers until it is SIGKILLed.

    python crash_child.py DB_URL CHART_JSON LOG ROUND SEED RETRY_JSON [--retry-only]

It first re-posts the units listed in RETRY_JSON (a previous round's in-flight batches and
a sample of what it acknowledged), then prints ``ready`` and posts random batches for ever:
one thread calling ``Ledger.post`` directly, three threads sharing one ``Batcher``.

Every batch is logged to LOG as JSON lines, flushed and fsynced: a ``sent`` line before the
ledger is called, an ``ack`` line with each transfer's status after it returns. So the
``ack`` lines are exactly what the ledger acknowledged; a batch with a ``sent`` line and no
``ack`` line was in flight when the process died (committed or not).

A *unit* is a named group of transfers whose bodies follow from its name alone, so that a
later process can re-post it identically:

- ``pay:<k>``: wallet -> wallet (linked) + wallet -> fee 1 fen
- ``top:<k>``: source -> wallet
- ``hold:<k>``: a pending wallet -> wallet hold (no timeout)
- ``post:<hold unit>`` / ``void:<hold unit>``: settle (partly) or release that hold
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from paycell.db import make_engine
from paycell.ledger import Ledger, TransferFlags, TransferRequest, TransferResult
from paycell.ledger.batcher import Batcher

LINKED, PENDING = TransferFlags.LINKED, TransferFlags.PENDING
BATCHER_THREADS = 3
LIFETIME_S = 60  # if nobody kills us, stop: never outlive a crashed test run


def requests_for(unit: str, chart: dict[str, Any]) -> list[TransferRequest]:
    """The transfers of ``unit``: the same for every process (seeded by the name)."""
    kind, _, rest = unit.partition(":")
    rng = random.Random(unit)  # a str seed is hashed with SHA-512: stable across processes
    wallets = chart["wallets"]
    if kind == "pay":
        a, b = rng.sample(wallets, 2)
        return [TransferRequest(f"{unit}:mv", a, b, rng.randint(1, 30_00), flags=LINKED),
                TransferRequest(f"{unit}:fee", a, chart["fee"], 1)]
    if kind == "top":
        return [TransferRequest(f"{unit}:in", chart["source"], rng.choice(wallets),
                                rng.randint(1, 20_00))]
    if kind == "hold":
        a, b = rng.sample(wallets, 2)
        return [TransferRequest(f"{unit}:h", a, b, rng.randint(1, 20_00), flags=PENDING)]
    if kind == "post":
        held = requests_for(rest, chart)[0]
        return [TransferRequest(f"{unit}:p", flags=TransferFlags.POST_PENDING,
                                pending_id=held.id, amount=rng.randint(1, held.amount or 1),
                                ledger=None)]
    if kind == "void":
        return [TransferRequest(f"{unit}:v", flags=TransferFlags.VOID_PENDING,
                                pending_id=f"{rest}:h", ledger=None)]
    raise ValueError(f"unknown unit {unit!r}")


class Log:
    """JSON lines, each flushed and fsynced before ``write`` returns."""

    def __init__(self, path: str) -> None:
        self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 (lives until SIGKILL)
        self._lock = threading.Lock()

    def write(self, **entry: Any) -> None:
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self._lock:
            self._f.write(line)
            self._f.flush()
            os.fsync(self._f.fileno())


Post = Callable[[Sequence[TransferRequest]], list[TransferResult]]


def submit(post: Post, log: Log, chart: dict[str, Any], batch: str, units: list[str],
           kind: str = "ack") -> list[TransferResult]:
    reqs = [r for u in units for r in requests_for(u, chart)]
    log.write(t="sent", b=batch, units=units, ids=[r.id for r in reqs])
    results = post(reqs)
    log.write(t=kind, b=batch, r=[[x.id, x.status, x.error.code if x.error else None]
                                  for x in results])
    return results


def writer(post: Post, log: Log, chart: dict[str, Any], rnd: int, t: int, seed: int) -> None:
    rng = random.Random(f"{seed}:{rnd}:{t}")
    holds: list[str] = []  # hold units acknowledged created, not yet settled
    n = 0
    while True:
        n += 1
        units: list[str] = []
        for i in range(rng.randint(3, 12)):
            name = f"r{rnd}t{t}n{n}i{i}"
            roll = rng.random()
            if roll < 0.06:  # rare top-ups: the wallets run dry now and then (overdrafts)
                units.append(f"top:{name}")
            elif roll < 0.21:
                units.append(f"hold:{name}")
            elif roll < 0.36 and holds:
                h = holds.pop(rng.randrange(len(holds)))
                units.append(f"{'post' if rng.random() < 0.6 else 'void'}:{h}")
            else:
                units.append(f"pay:{name}")
        results = submit(post, log, chart, f"r{rnd}t{t}n{n}", units)
        status = {x.id: x.status for x in results}
        holds += [u for u in units if u.startswith("hold:") and status[f"{u}:h"] == "created"]


def main(argv: list[str]) -> int:
    db_url, chart_json, log_path, rnd, seed, retry_path = argv[:6]
    retry_only = "--retry-only" in argv[6:]
    chart = json.loads(chart_json)
    engine = make_engine(db_url)
    ledger = Ledger(engine)
    log = Log(log_path)
    with open(retry_path, encoding="utf-8") as f:
        retry: list[str] = json.load(f)
    for k in range(0, len(retry), 40):
        submit(ledger.post, log, chart, f"retry{k}", retry[k : k + 40], kind="retry")
    if retry_only:
        print("done", flush=True)
        engine.dispose()
        return 0
    batcher = Batcher(ledger)
    posts: list[Post] = [ledger.post] + [batcher.post] * BATCHER_THREADS
    for t, post in enumerate(posts):
        threading.Thread(target=writer, args=(post, log, chart, int(rnd), t, int(seed)),
                         daemon=True).start()
    print("ready", flush=True)
    time.sleep(LIFETIME_S)
    print("not killed in time", file=sys.stderr, flush=True)
    os._exit(3)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
