"""The background worker: hold expiry on time (not before), resilience, prompt stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from paycell.api.app import create_app
from paycell.clock import ManualClock
from paycell.config import Settings
from paycell.ledger.chart import Code, open_account, system_account
from paycell.ledger.model import TransferFlags, TransferRequest
from paycell.ledger.store import Ledger
from paycell.migrate import upgrade
from paycell.worker import Job, Worker


def _settings(db_url: str, **kw: object) -> Settings:
    return Settings(_env_file=None, database_url=db_url, **kw)  # type: ignore[arg-type]


def _wallet_with_holds(ledger: Ledger, n: int, timeout: int = 60) -> tuple[int, list[str]]:
    bank = system_account(ledger, Code.BANK_CLEARING, "icbc").id
    wallet = open_account(ledger, "wallet:worker:+8613800000009", Code.WALLET).id
    shop = open_account(ledger, "merchant_payable:worker:shop", Code.MERCHANT_PAYABLE).id
    ledger.post_one(TransferRequest("topup", bank, wallet, 100_000))
    ids = [f"hold-{i}" for i in range(n)]
    ledger.post([TransferRequest(h, wallet, shop, 1_000, flags=TransferFlags.PENDING,
                                 timeout=timeout) for h in ids])
    return wallet, ids


def test_a_hold_is_released_once_its_timeout_has_passed_and_not_before(
    db_url: str, engine: Engine,
) -> None:
    clock = ManualClock()
    ledger = Ledger(engine, clock)
    wallet, (hold,) = _wallet_with_holds(ledger, 1, timeout=60)
    worker = Worker(ledger, _settings(db_url))
    assert worker.run_once() == {"expire_holds": 0}
    clock.advance(59)
    assert worker.run_once() == {"expire_holds": 0}
    state = ledger.hold(hold)
    assert state is not None and state.status == "pending"
    assert ledger.account(wallet).available == 99_000
    clock.advance(1)
    assert worker.run_once() == {"expire_holds": 1}
    state = ledger.hold(hold)
    assert state is not None
    assert (state.status, state.resolved_by) == ("expired", f"expire:{hold}")
    assert ledger.account(wallet).available == 100_000
    assert ledger.account(wallet).debits_pending == 0
    assert worker.run_once() == {"expire_holds": 0}  # released once only


def test_expiry_goes_on_while_pages_come_back_full(db_url: str, engine: Engine) -> None:
    clock = ManualClock()
    ledger = Ledger(engine, clock)
    _, holds = _wallet_with_holds(ledger, 7)
    clock.advance(3600)
    worker = Worker(ledger, _settings(db_url), expiry_page=3)
    assert worker.run_once() == {"expire_holds": 7}
    assert {s.status for h in holds if (s := ledger.hold(h))} == {"expired"}


def test_a_failing_job_is_logged_and_the_others_still_run(
    db_url: str, engine: Engine, caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    def broken() -> int:
        calls.append("broken")
        raise RuntimeError("mail server down")

    def fine() -> int:
        calls.append("fine")
        return 2

    worker = Worker(Ledger(engine), _settings(db_url),
                    jobs=[Job("broken", 1, broken), Job("fine", 1, fine)])
    assert worker.run_once() == {"broken": None, "fine": 2}
    assert worker.run_once() == {"broken": None, "fine": 2}
    assert calls == ["broken", "fine"] * 2
    assert worker.failures == 2
    assert "mail server down" in caplog.text


@pytest.mark.sqlite_only
def test_the_thread_runs_jobs_periodically_and_stops_promptly(
    db_url: str, engine: Engine,
) -> None:
    ran = threading.Event()
    count = [0]

    def job() -> int:
        count[0] += 1
        if count[0] >= 3:
            ran.set()
        return 0

    worker = Worker(Ledger(engine), _settings(db_url), jobs=[Job("tick", 0.05, job),
                                                             Job("slow", 3600, lambda: 0)])
    worker.start()
    thread = worker._thread
    try:
        assert ran.wait(5), "the job did not run three times"
    finally:
        worker.stop()
    # stop() returns once the loop has ended: it does not sit out the hour-long job interval.
    assert thread is not None and not thread.is_alive()
    stopped_at = count[0]
    time.sleep(0.2)
    assert count[0] == stopped_at


def test_the_app_runs_the_worker_in_process(db_url: str, engine: Engine) -> None:
    clock = ManualClock()
    ledger = Ledger(engine, clock)
    _, (hold,) = _wallet_with_holds(ledger, 1, timeout=30)
    clock.advance(31)
    settings = _settings(db_url, run_workers=True, expiry_interval_s=0)
    with TestClient(create_app(settings, engine=engine, clock=clock)) as client:
        deadline = time.monotonic() + 10
        while (h := ledger.hold(hold)) is not None and h.status == "pending":
            assert time.monotonic() < deadline, "the in-process worker did not expire the hold"
            time.sleep(0.05)
        assert client.app.state.worker is not None  # type: ignore[attr-defined]
    assert h is not None and h.status == "expired"


def test_no_worker_when_run_workers_is_off(db_url: str, engine: Engine) -> None:
    settings = _settings(db_url, run_workers=False)
    with TestClient(create_app(settings, engine=engine)) as client:
        assert client.app.state.worker is None  # type: ignore[attr-defined]


def test_paycell_worker_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    upgrade(url)
    exe = Path(sys.executable).with_name("paycell")
    env = {**os.environ, "PAYCELL_DATABASE_URL": url, "PAYCELL_EXPIRY_INTERVAL_S": "1"}
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(exe), "worker"], cwd=tmp_path, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while "worker started" not in log.read_text():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    text = log.read_text()
    assert "SIGTERM received" in text
    assert "worker stopped" in text
    assert "Traceback" not in text
