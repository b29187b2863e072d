"""``paycell serve`` for real: a subprocess on loopback, on a database made by the CLI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

KEY = "serve-test-key"
EXPIRING_HOLD = "demo:escrow:0007"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def paycell(*args: str, env: dict[str, str], cwd: Path) -> str:
    exe = Path(sys.executable).with_name("paycell")
    done = subprocess.run([str(exe), *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def wait_until(what: str, ok: object, timeout: float, proc: subprocess.Popen[bytes],
               log: Path) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"the server exited: {log.read_text()}"
        try:
            if callable(ok) and ok():
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout}s: {log.read_text()}")
        time.sleep(0.1)


def test_serve_answers_health_docs_and_openapi(tmp_path: Path) -> None:
    env = {**os.environ, "PAYCELL_DATABASE_URL": f"sqlite:///{tmp_path / 'paycell.db'}",
           "PAYCELL_OPERATOR_API_KEY": KEY, "PAYCELL_EXPIRY_INTERVAL_S": "1",
           "PAYCELL_RUN_WORKERS": "true"}
    paycell("db", "upgrade", env=env, cwd=tmp_path)
    assert "transfers" in paycell("demo", "load", env=env, cwd=tmp_path)
    assert "not loaded" in paycell("demo", "load", "--if-empty", env=env, cwd=tmp_path)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    exe = Path(sys.executable).with_name("paycell")
    with log.open("wb") as out:
        proc = subprocess.Popen([str(exe), "serve", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=base, timeout=10, trust_env=False) as http:
            wait_until("/health answers", lambda: http.get("/health").status_code == 200,
                       30, proc, log)
            health = http.get("/health").json()
            assert health["status"] == "ok" and health["database"] == "sqlite"
            assert health["journal_seq"] > 250

            docs = http.get("/docs")
            assert docs.status_code == 200 and "swagger-ui" in docs.text
            spec = http.get("/openapi.json").json()
            assert spec["info"]["title"] == "paycell"
            assert "/v1/ledger/accounts/{account_id}/transfers" in spec["paths"]

            assert http.get("/v1/ledger/audit").status_code == 401
            auth = {"X-API-Key": KEY}
            assert http.get("/v1/ledger/audit", headers=auth).json()["ok"] is True

            # The in-process worker releases the hold the demo left to expire.
            def expired() -> bool:
                r = http.get(f"/v1/ledger/holds/{EXPIRING_HOLD}", headers=auth)
                return bool(r.json()["status"] == "expired")

            wait_until("the worker expires the demo's hold", expired, 20, proc, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "Traceback" not in text
    assert "Application shutdown complete" in text
