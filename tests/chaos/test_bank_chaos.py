"""The bank test with faults, short version (``make chaos`` runs the long one).

Real processes: a durable throwaway PostgreSQL, the API under uvicorn with two workers, HTTP
clients on loopback. The fault thread SIGKILLs the API and crashes PostgreSQL at random; the
checks are the ones ``paycell chaos`` prints (see paycell/devtools/chaos.py).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from paycell.devtools.chaos import run, write_json


def test_transfers_survive_killed_servers_and_a_crashed_database(tmp_path: Path) -> None:
    report = run(50.0, wallets=12, clients=4, fault_every=(3.0, 7.0), seed=7,
                 workdir=tmp_path)
    assert report.violations == []
    assert report.audit_ok
    assert sum(report.faults.values()) >= 4, report.faults
    assert report.faults.get("crash_postgres", 0) >= 1 and report.faults.get("kill_api", 0) >= 1
    assert report.ops.get("ok", 0) >= 20, report.ops
    assert report.snapshots >= 20
    # Every transfer the ledger holds was sent by a client: acknowledged, or unknown to it.
    assert report.transfers_in_ledger == report.ops["ok"] + report.unknown_landed
    # A crashed database answers 503 database_unavailable (retried with the same key), never
    # a 500: what the requests were retried after, by status and code.
    assert not [k for k in report.retried_after if k.startswith("500")], report.retried_after

    # Second by second, the acknowledgements add up, and every fault is on the chart.
    assert sum(p["acknowledged"] for p in report.timeline) == report.ops["ok"]
    assert sum(p["refused"] for p in report.timeline) == report.ops.get("failed", 0)
    assert len(report.fault_log) == sum(report.faults.values())
    assert all(0 <= injected < back for injected, back, _ in report.fault_log)
    write_json(report, tmp_path / "chaos.json")
    root = ET.fromstring((tmp_path / "chaos.svg").read_text())
    svg = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{svg}polyline")) == 2
    labels = [t.text for t in root.iter(f"{svg}text")]
    assert labels.count("API killed") == report.faults["kill_api"]
    assert labels.count("PostgreSQL crashed") == report.faults["crash_postgres"]
