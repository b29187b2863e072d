"""The bank: card verification (binding), debits (top-up) and credits (withdrawal, payout).

``BankGateway`` is what the funding use cases need from a bank; ``HttpBank`` speaks the
JSON-over-HTTP API documented in docs/gateways.md, which the loopback simulator
(``bank_sim.py``) implements. Every operation carries *our* reference (``topup:<id>``,
``withdrawal:<id>``); the bank treats a repeated reference as the same operation, and
``status(reference)`` tells what became of one whose answer we never got.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from paycell.gateways.http import Answer, JsonClient, Outcome


@dataclass(frozen=True, slots=True)
class Verification:
    """The bank's answer while a card is being bound.

    ``status``: ``code_sent`` (the holder got an SMS code), ``verified`` (``token`` is set),
    ``code_invalid`` (wrong code, ``tries_left``), ``rejected`` (``reason``: card_blocked,
    card_unknown, too_many_attempts, ...) or ``unknown`` / ``unavailable`` (no answer).
    """

    status: str
    reason: str | None = None
    token: str | None = None
    bank: str | None = None  # the bank's short code, e.g. "icbc"
    bank_name: str | None = None
    last4: str | None = None
    tries_left: int | None = None

    @classmethod
    def of(cls, body: dict[str, Any]) -> Verification:
        tries = body.get("tries_left")
        return cls(
            status=str(body.get("status") or "unknown"), reason=_opt(body.get("reason")),
            token=_opt(body.get("token")), bank=_opt(body.get("bank")),
            bank_name=_opt(body.get("bank_name")), last4=_opt(body.get("last4")),
            tries_left=tries if isinstance(tries, int) else None)


def _opt(value: object) -> str | None:
    return None if value is None else str(value)[:500]


def _luhn_sum(digits: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total


def luhn_valid(pan: str) -> bool:
    """A card number as banks issue them: 13 to 19 digits with a right Luhn check digit."""
    return pan.isascii() and pan.isdigit() and 13 <= len(pan) <= 19 and _luhn_sum(pan) % 10 == 0


def luhn_complete(partial: str) -> str:
    """``partial`` with the Luhn check digit appended (to make test card numbers)."""
    return partial + str((10 - _luhn_sum(partial + "0") % 10) % 10)


class BankGateway(Protocol):
    def start_verification(self, *, reference: str, pan: str, holder_msisdn: str
                           ) -> Verification:
        """Ask the bank to verify the card's holder: it texts a code to ``holder_msisdn``."""

    def confirm_verification(self, *, reference: str, code: str) -> Verification:
        """Pass on the code the holder typed; ``verified`` carries the card's token."""

    def debit(self, *, reference: str, token: str, amount_fen: int, currency: str
              ) -> Answer:
        """Take money from the card (a top-up)."""

    def credit(self, *, reference: str, token: str, amount_fen: int, currency: str
               ) -> Answer:
        """Pay money to the card (a withdrawal, a payout)."""

    def status(self, *, reference: str) -> Answer:
        """What became of the operation with this reference (``NOT_FOUND`` if none)."""


class HttpBank:
    """``BankGateway`` over the documented HTTP API (the simulator, or a real bank's
    adapter service speaking the same API)."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.http = JsonClient(base_url, timeout_s=timeout_s, transport=transport)

    def _verification(self, method: str, path: str, body: dict[str, Any]) -> Verification:
        reply = self.http.call(method, path, body)
        if reply.outcome is not None:
            return Verification(status=reply.outcome.value)
        if reply.status == 404:
            return Verification(status="rejected", reason="verification_not_found")
        if reply.status >= 400 and "status" not in reply.body:
            return Verification(status="rejected",
                                reason=_opt(reply.body.get("reason")) or "invalid_request")
        return Verification.of(reply.body)

    def start_verification(self, *, reference: str, pan: str, holder_msisdn: str
                           ) -> Verification:
        return self._verification("POST", "/v1/verifications", {
            "reference": reference, "pan": pan, "holder_msisdn": holder_msisdn})

    def confirm_verification(self, *, reference: str, code: str) -> Verification:
        return self._verification("POST", f"/v1/verifications/{reference}/confirm",
                                  {"code": code})

    def debit(self, *, reference: str, token: str, amount_fen: int, currency: str
              ) -> Answer:
        return self.http.operation("POST", "/v1/debits", {
            "reference": reference, "token": token, "amount_fen": amount_fen,
            "currency": currency})

    def credit(self, *, reference: str, token: str, amount_fen: int, currency: str
               ) -> Answer:
        return self.http.operation("POST", "/v1/credits", {
            "reference": reference, "token": token, "amount_fen": amount_fen,
            "currency": currency})

    def status(self, *, reference: str) -> Answer:
        return self.http.operation("GET", f"/v1/operations/{reference}")


__all__ = ["Answer", "BankGateway", "HttpBank", "Outcome", "Verification", "luhn_complete",
           "luhn_valid"]
