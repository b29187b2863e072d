"""``GET /health``: public, cheap, honest about the database."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from paycell.api.app import create_app
from paycell.config import Settings
from paycell.ledger.model import TransferRequest
from paycell.ledger.store import Ledger


def test_health_reports_the_database_and_the_journal_head(
    client: TestClient, db_backend: str,
) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"status": "ok", "database": db_backend, "journal_seq": 0}


def test_health_follows_the_journal(client: TestClient) -> None:
    ledger: Ledger = client.app.state.ledger  # type: ignore[attr-defined]
    a = ledger.create_account("health:a", code=1).id
    b = ledger.create_account("health:b", code=1).id
    ledger.post([TransferRequest(f"t{i}", a, b, 100) for i in range(3)])
    assert client.get("/health").json()["journal_seq"] == 3


def test_health_needs_no_api_key_and_reveals_nothing_else(client: TestClient) -> None:
    body = client.get("/health", headers={"X-API-Key": "wrong"}).json()
    assert set(body) == {"status", "database", "journal_seq"}


def test_health_is_503_when_the_database_is_not_usable(tmp_path: Path) -> None:
    # An empty SQLite file: the database answers SELECT 1 but the ledger is not there.
    settings = Settings(_env_file=None,
                        database_url=f"sqlite:///{tmp_path / 'empty.db'}", run_workers=False)
    with TestClient(create_app(settings)) as client:
        r = client.get("/health")
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "database_unavailable"
    assert body["type"] == "https://paycell.dev/errors/database_unavailable"
    assert body["instance"] == "/health"


def test_health_is_503_when_the_database_server_is_down() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    settings = Settings(_env_file=None,
                        database_url="postgresql://paycell@127.0.0.1:1/paycell",
                        run_workers=False)
    with TestClient(create_app(settings)) as client:
        r = client.get("/health")
    assert r.status_code == 503
    assert r.json()["code"] == "database_unavailable"
