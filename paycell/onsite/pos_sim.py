"""A POS terminal simulator: taps a :class:`~paycell.onsite.card_sim.CardSim` and speaks the
terminal API over HTTP (httpx), every request MACed with the terminal key, as a real
terminal would.

A purchase: GENERATE AC asking for an ARQC -> ``POST /v1/terminal/authorisations`` -> the
second GENERATE AC with the issuer's ARPC and response code. If the card then declines an
approval (the ARPC did not verify), or the answer never came (``lose_answer``: the terminal
timed out), the terminal sends a reversal, as EMV requires. It keeps its own batch totals
and sends them when it closes the batch, so the platform can say whether they balance.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import httpx

from paycell.clock import Clock
from paycell.onsite import emv
from paycell.onsite.card_sim import CardSim
from paycell.onsite.terminal_auth import message_mac

CST = dt.timezone(dt.timedelta(hours=8))


class TerminalAuth(httpx.Auth):
    """httpx authentication that MACs every request with the terminal key."""

    requires_request_body = True

    def __init__(self, terminal_id: str, key: bytes, *, clock: Clock | None = None) -> None:
        self.terminal_id, self.key, self.clock = terminal_id, key, clock

    def headers(self, method: str, target: str, body: bytes) -> dict[str, str]:
        """The headers that MAC one request (also for clients other than httpx)."""
        now = time.time() if self.clock is None else self.clock.now_us() / 1_000_000
        ts, nonce = str(int(now)), secrets.token_hex(12)
        return {"X-Terminal-Id": self.terminal_id, "X-Terminal-Timestamp": ts,
                "X-Terminal-Nonce": nonce,
                "X-Terminal-MAC": message_mac(self.key, method, target, self.terminal_id,
                                              ts, nonce, body)}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self.headers(request.method,
                                            request.url.raw_path.decode("ascii"),
                                            request.content))
        yield request


class PosError(Exception):
    """The platform refused a terminal request (not a decline): status and problem body."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {problem.get('code')}: {problem.get('detail')}")
        self.status, self.problem = status, problem


@dataclass
class Sale:
    """One purchase as the terminal saw it."""

    stan: str
    batch_no: int
    amount_fen: int
    answer: dict[str, Any] | None  # the platform's answer; None if it never came
    card_result: str | None  # TC (approved by the card) / AAC, after the second AC
    reversed: bool = False

    @property
    def approved(self) -> bool:
        return self.card_result == "TC" and not self.reversed

    @property
    def response_code(self) -> str | None:
        return None if self.answer is None else self.answer.get("response_code")


@dataclass
class Totals:
    approved_count: int = 0
    approved_fen: int = 0
    reversed_count: int = 0
    reversed_fen: int = 0
    voided_count: int = 0
    voided_fen: int = 0
    refunded_count: int = 0
    refunded_fen: int = 0
    sales: dict[str, Sale] = field(default_factory=dict)

    def as_json(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if k != "sales"}


class PosSim:
    def __init__(self, http: httpx.Client, terminal_id: str, key_hex: str, merchant_code: str,
                 store_code: str, *, clock: Clock | None = None) -> None:
        self.http = http
        self.terminal_id = terminal_id
        self.merchant_code, self.store_code = merchant_code, store_code
        self.clock = clock
        self.auth = TerminalAuth(terminal_id, bytes.fromhex(key_hex), clock=clock)
        self.batch_no = 0
        self._stan = 0
        self.totals = Totals()

    @classmethod
    def connect(cls, base_url: str, terminal_id: str, key_hex: str, merchant_code: str,
                store_code: str, *, clock: Clock | None = None) -> PosSim:
        """A terminal talking to paycell at ``base_url`` over HTTP."""
        return cls(httpx.Client(base_url=base_url, timeout=10), terminal_id, key_hex,
                   merchant_code, store_code, clock=clock)

    # -- plumbing ----------------------------------------------------------------------------
    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post(f"/v1/terminal/{path}", json=body, auth=self.auth)
        data: dict[str, Any] = r.json()
        if r.status_code >= 400:
            raise PosError(r.status_code, data)
        return data

    def next_stan(self) -> str:
        self._stan = self._stan % 999_999 + 1
        return f"{self._stan:06d}"

    def _today(self) -> str:
        now = time.time() if self.clock is None else self.clock.now_us() / 1_000_000
        return dt.datetime.fromtimestamp(now, CST).strftime("%y%m%d")

    # -- the day -----------------------------------------------------------------------------
    def sign_on(self) -> int:
        self.batch_no = int(self._post("sign-on", {})["batch_no"])
        return self.batch_no

    def message(self, card: CardSim, amount_fen: int, stan: str, pin: str | None = None
                ) -> dict[str, Any]:
        """Tap: the card's first GENERATE AC (ARQC) and the authorisation request."""
        ac = card.generate_ac(amount_fen, unpredictable=secrets.token_hex(4).upper(),
                              date=self._today())
        t = ac.txn
        return {"merchant_code": self.merchant_code, "store_code": self.store_code,
                "batch_no": self.batch_no, "stan": stan, "pan": card.pan, "psn": card.psn,
                "amount_fen": t.amount_fen, "other_fen": t.other_fen, "currency": t.currency,
                "country": t.country, "date": t.date, "txn_type": t.txn_type, "tvr": t.tvr,
                "aip": t.aip, "cvr": t.cvr, "unpredictable": t.unpredictable, "atc": t.atc,
                "arqc": ac.cryptogram.hex().upper(), "pin": pin}

    def purchase(self, card: CardSim, amount_fen: int, *, pin: str | None = None,
                 lose_answer: bool = False) -> Sale:
        """One online purchase. With ``lose_answer`` the platform's answer is dropped on
        the way back (a timeout): the card gets no ARPC and the terminal reverses."""
        stan = self.next_stan()
        msg = self.message(card, amount_fen, stan, pin)
        answer = self._post("authorisations", msg)
        sale = Sale(stan, self.batch_no, amount_fen, None if lose_answer else answer, None)
        self.totals.sales[stan] = sale
        if lose_answer:
            card.second_generate_ac(None, emv.ARC_DECLINED)
            sale.card_result = "AAC"
            self.reverse(sale)
            return sale
        arpc = bytes.fromhex(answer["arpc"]) if answer.get("arpc") else None
        arc = bytes.fromhex(answer["arc"]) if answer.get("arc") else emv.ARC_DECLINED
        sale.card_result = card.second_generate_ac(arpc, arc).kind
        if answer["approved"] and sale.card_result != "TC":
            self.reverse(sale)  # the card refused what the issuer approved
        elif sale.approved:
            self.totals.approved_count += 1
            self.totals.approved_fen += amount_fen
        return sale

    def reverse(self, sale: Sale) -> dict[str, Any]:
        """Send the reversal of ``sale`` (again, if called again)."""
        answer = self._post("reversals", {"batch_no": sale.batch_no, "stan": sale.stan,
                                          "amount_fen": sale.amount_fen})
        if not sale.reversed and answer.get("auth_code"):
            self.totals.reversed_count += 1
            self.totals.reversed_fen += sale.amount_fen
        sale.reversed = True
        return answer

    def void(self, sale: Sale) -> dict[str, Any]:
        answer = self._post("voids", {"batch_no": sale.batch_no, "stan": sale.stan})
        if sale.approved and answer["state"] == "voided":
            self.totals.approved_count -= 1
            self.totals.approved_fen -= sale.amount_fen
            self.totals.voided_count += 1
            self.totals.voided_fen += sale.amount_fen
            sale.reversed = True
        return answer

    def refund(self, sale: Sale, amount_fen: int) -> dict[str, Any]:
        answer = self._post("refunds", {
            "batch_no": self.batch_no, "stan": self.next_stan(),
            "original_batch_no": sale.batch_no, "original_stan": sale.stan,
            "amount_fen": amount_fen})
        self.totals.refunded_count += 1
        self.totals.refunded_fen += amount_fen
        return answer

    def close_batch(self) -> dict[str, Any]:
        """Close the batch with this terminal's own totals; a fresh count starts."""
        answer = self._post("batch/close", {"batch_no": self.batch_no,
                                            "totals": self.totals.as_json()})
        self.totals = Totals()
        return answer
