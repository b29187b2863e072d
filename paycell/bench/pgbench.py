"""The baseline: PostgreSQL's own pgbench, TPC-B-like, on the same server as the ledger run.

``pgbench -i -s 10 -q`` fills a database called ``pgbench``; then the stock TPC-B-like
script (per transaction: three UPDATEs, a SELECT and an INSERT, one commit) runs for a fixed
time at each client count. Its TPS is what this server and disk can commit durably when the
client is C code with no logic of its own, the yardstick for the ledger's payments per second.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from paycell.devtools.pgserver import PG_USER, ThrowawayPostgres

DATABASE = "pgbench"
SCALE = 10
CLIENTS = (8, 32)
THREADS = 2

_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.M)
_LATENCY = re.compile(r"^latency average = ([0-9.]+) ms", re.M)
_PROCESSED = re.compile(r"^number of transactions actually processed: (\d+)", re.M)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.M)


class PgbenchError(RuntimeError):
    code = "pgbench_failed"


@dataclass(slots=True)
class PgbenchRun:
    clients: int
    threads: int
    seconds: int
    tps: float
    latency_avg_ms: float | None = None
    transactions: int | None = None
    failed: int | None = None


@dataclass(slots=True)
class PgbenchResult:
    scale: int
    runs: list[PgbenchRun] = field(default_factory=list)

    @property
    def best_tps(self) -> float | None:
        return max((r.tps for r in self.runs), default=None)

    def to_json(self) -> dict[str, Any]:
        return {"scale": self.scale, "runs": [asdict(r) for r in self.runs],
                "best_tps": self.best_tps}


def parse_output(text: str) -> dict[str, Any]:
    """tps (without initial connection time), average latency and counts from pgbench."""
    tps = _TPS.search(text)
    if tps is None:
        raise PgbenchError(f"no 'tps = ... (without initial connection time)' in:\n{text}")
    out: dict[str, Any] = {"tps": float(tps.group(1))}
    if (m := _LATENCY.search(text)) is not None:
        out["latency_avg_ms"] = float(m.group(1))
    if (m := _PROCESSED.search(text)) is not None:
        out["transactions"] = int(m.group(1))
    if (m := _FAILED.search(text)) is not None:
        out["failed"] = int(m.group(1))
    return out


def _command(server: ThrowawayPostgres, *args: str) -> list[str]:
    # The server trusts local TCP connections, so pgbench itself needs no particular OS
    # user; as root it still runs as the server's owner, like the server's other tools.
    cmd = [str(server.pgbench), "-h", "127.0.0.1", "-p", str(server.port), "-U", PG_USER,
           *args, DATABASE]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", PG_USER, "--", *cmd]
    return cmd


def _run(server: ThrowawayPostgres, *args: str, timeout: float) -> str:
    with tempfile.TemporaryDirectory(prefix="paycell-pgbench-") as cwd:
        if os.geteuid() == 0:
            shutil.chown(cwd, PG_USER)
        done = subprocess.run(
            _command(server, *args), cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=timeout, check=False,
        )
    if done.returncode != 0:
        raise PgbenchError(
            f"pgbench {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout + "\n" + done.stderr


def run_pgbench(
    server: ThrowawayPostgres,
    *,
    seconds: int,
    clients: Sequence[int] = CLIENTS,
    threads: int = THREADS,
    scale: int = SCALE,
    on_step: Callable[[str], None] | None = None,
) -> PgbenchResult:
    """Initialise database ``pgbench`` at ``scale`` and run TPC-B-like per client count."""
    step = on_step or (lambda _msg: None)
    server.drop_database(DATABASE)
    server.create_database(DATABASE)
    step(f"pgbench -i -s {scale}")
    _run(server, "-i", "-s", str(scale), "-q", timeout=1800)
    _checkpoint(server)
    result = PgbenchResult(scale=scale)
    for c in clients:
        step(f"pgbench -c {c} -j {threads} -T {seconds}")
        out = _run(server, "-c", str(c), "-j", str(threads), "-T", str(seconds),
                   timeout=seconds * 3 + 300)
        result.runs.append(PgbenchRun(clients=c, threads=threads, seconds=seconds,
                                      **parse_output(out)))
    return result


def _checkpoint(server: ThrowawayPostgres) -> None:
    """Write the initial load out now rather than during a measured run."""
    from psycopg import sql

    server.execute(sql.Composed([sql.SQL("CHECKPOINT")]))


def server_version(server: ThrowawayPostgres) -> str:
    import psycopg

    with psycopg.connect(server.libpq_url()) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"
