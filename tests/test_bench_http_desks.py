"""Reading the desks' batch logs (bench/http_desks.py): per kind of batch, over the window,
summed over the processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from paycell.bench import http_desks


def _log(path: Path, rows: list[tuple[float, str, int, float, float]], tail: str = "") -> None:
    path.write_text("".join(f"{t:.6f}\t{k}\t{n}\t{w:.3f}\t{c:.3f}\n" for t, k, n, w, c in rows)
                    + tail, encoding="utf-8")


def test_figures_per_kind_over_the_window_and_the_processes(tmp_path: Path) -> None:
    _log(tmp_path / "101-payments.tsv", [
        (9.5, "p2p", 50, 99.0, 9.0),  # before the window: not counted
        (10.0, "p2p", 4, 10.0, 2.0),
        (10.5, "nfc", 6, 20.0, 5.0),
        (12.0, "p2p", 9, 1.0, 1.0),  # at the window's end: not counted
    ], tail="11.0\tnfc\t3")  # a line cut short by a kill
    _log(tmp_path / "102-payments.tsv", [(11.0, "p2p", 8, 30.0, 3.0)])
    _log(tmp_path / "101-sessions.tsv", [(10.2, "sessions", 2, 1.0, 0.5),
                                         (11.2, "sessions", 1, 1.0, 0.5)])
    got = http_desks.read(tmp_path, 10.0, 12.0)
    assert set(got) == {"p2p", "nfc", "sessions"}
    p2p = got["p2p"]
    assert p2p["desk"] == "payments"
    assert p2p["batches_per_s"] == 1.0  # two batches in two seconds
    assert p2p["requests_per_batch"] == 6.0
    assert (p2p["wall_ms"], p2p["cpu_ms"]) == (20.0, 2.5)
    assert p2p["waiting"] == pytest.approx(0.875)
    # the payments desk ran 60 ms of batches in 2 s, in each of two processes
    assert p2p["desk_busy"] == got["nfc"]["desk_busy"] == pytest.approx(0.015)
    assert got["nfc"]["requests_per_batch"] == 6.0
    assert got["sessions"] == {"desk": "sessions", "batches_per_s": 1.0,
                               "requests_per_batch": 1.5, "wall_ms": 1.0, "cpu_ms": 0.5,
                               "waiting": 0.5, "desk_busy": 0.001}


def test_no_logs_or_no_window_gives_nothing(tmp_path: Path) -> None:
    assert http_desks.read(tmp_path / "missing", 0.0, 1.0) == {}
    _log(tmp_path / "1-payments.tsv", [(0.5, "p2p", 1, 1.0, 1.0)])
    assert http_desks.read(tmp_path, 1.0, 1.0) == {}
    assert http_desks.read(tmp_path, 2.0, 3.0) == {}
