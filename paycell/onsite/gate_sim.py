"""A simulated transit gate: approves fares offline from a card's e-cash purse (TC), keeps
the records, uploads them in batches and downloads the hot list, over the terminal API
(messages MACed with the terminal key, as ``terminals.authenticate`` checks).

Used by the tests and the demo; it does what a real gate's software does, minus the turnstile.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from paycell.clock import Clock, SystemClock
from paycell.onsite import emv
from paycell.onsite.card_sim import CardSim
from paycell.onsite.ecash import OfflineRecord

BATCH_PATH = "/v1/terminal/ecash-batches"
HOT_LIST_PATH = "/v1/terminal/hot-list"


class HttpClient(Protocol):  # a TestClient or an httpx.Client
    def request(self, method: str, url: str, **kw: Any) -> Any: ...


def record_json(r: OfflineRecord) -> dict[str, Any]:
    doc = asdict(r)
    doc["tc"] = r.tc.hex().upper()
    return doc

CST = timezone(timedelta(hours=8), "CST")


class GateSim:
    def __init__(self, terminal_id: str, fare_fen: int, *, key_hex: str | None = None,
                 clock: Clock | None = None) -> None:
        self.terminal_id = terminal_id
        self.fare_fen = fare_fen
        self._key = bytes.fromhex(key_hex) if key_hex else None
        self.clock = clock or SystemClock()
        self.pending: list[OfflineRecord] = []  # approved, not yet in a batch
        self.batches: list[list[OfflineRecord]] = []  # kept: a gate re-sends when in doubt
        self.hot: set[tuple[str, str]] = set()

    def _now_us(self) -> int:
        return self.clock.now_us()

    def _date(self) -> str:
        # The local (China Standard Time) date, as the POS simulator and real gates use.
        return datetime.fromtimestamp(self._now_us() / 1_000_000, CST).strftime("%y%m%d")

    def tap(self, card: CardSim, fare_fen: int | None = None) -> bool:
        """One passenger: refused if the card is hot-listed or its purse cannot pay (AAC),
        else the TC is recorded and the gate opens."""
        if (card.pan, card.psn) in self.hot:
            return False
        resp = card.offline_purchase(fare_fen if fare_fen is not None else self.fare_fen,
                                     unpredictable=secrets.token_hex(4).upper(),
                                     date=self._date())
        if resp.cid != emv.CID_TC:
            return False
        t = resp.txn
        self.pending.append(OfflineRecord(
            pan=card.pan, psn=card.psn, atc=resp.atc, amount_fen=t.amount_fen, date=t.date,
            unpredictable=t.unpredictable, tc=resp.cryptogram, cvr=t.cvr, aip=t.aip,
            tvr=t.tvr, country=t.country, currency=t.currency, txn_type=t.txn_type,
            other_fen=t.other_fen))
        return True

    def close_batch(self) -> list[OfflineRecord]:
        """The records approved since the last batch, as a batch to upload."""
        batch, self.pending = self.pending, []
        self.batches.append(batch)
        return batch

    # -- the terminal API --------------------------------------------------------------------
    def _signed(self, client: HttpClient, method: str, path: str, body: bytes) -> Any:
        from paycell.onsite.terminal_auth import message_mac

        if self._key is None:
            raise RuntimeError("the gate has no terminal key")
        ts = str(self._now_us() // 1_000_000)
        nonce = secrets.token_hex(8)
        mac = message_mac(self._key, method, path, self.terminal_id, ts, nonce, body)
        headers = {"X-Terminal-Id": self.terminal_id, "X-Terminal-Timestamp": ts,
                   "X-Terminal-Nonce": nonce, "X-Terminal-MAC": mac,
                   "content-type": "application/json"}
        return client.request(method, path, content=body, headers=headers)

    def upload(self, client: HttpClient, batch: list[OfflineRecord],
               batch_ref: str | None = None) -> Any:
        body = json.dumps({"batch_ref": batch_ref,
                           "records": [record_json(r) for r in batch]}).encode()
        return self._signed(client, "POST", BATCH_PATH, body)

    def download_hot_list(self, client: HttpClient) -> int:
        """Replace the gate's hot list with the platform's; how many cards it holds."""
        resp = self._signed(client, "GET", HOT_LIST_PATH, b"")
        resp.raise_for_status()
        self.hot = {(e["pan"], e["psn"]) for e in resp.json()["cards"]}
        return len(self.hot)
