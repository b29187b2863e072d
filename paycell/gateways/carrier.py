"""Carrier billing: charge an amount to a subscriber's phone account (prepaid airtime or the
postpaid bill) so that it can be credited to their wallet.

``CarrierBilling`` is the interface; ``HttpCarrier`` speaks the JSON-over-HTTP API in
docs/gateways.md, implemented by the loopback simulator ``carrier_sim.py``. As with the
bank, every charge carries our reference and ``status(reference)`` resolves a charge whose
answer was lost.
"""

from __future__ import annotations

from typing import Protocol

import httpx

from paycell.gateways.http import Answer, JsonClient, Outcome


class CarrierBilling(Protocol):
    name: str  # the carrier's short code, e.g. "cmcc": names its receivable account

    def charge(self, *, reference: str, msisdn: str, amount_fen: int, currency: str
               ) -> Answer:
        """Charge ``msisdn``'s phone account (airtime or bill). Rejection reasons include
        ``insufficient_airtime``, ``credit_limit``, ``not_a_subscriber``,
        ``account_suspended``."""

    def status(self, *, reference: str) -> Answer:
        """What became of the charge with this reference (``NOT_FOUND`` if none)."""


class HttpCarrier:
    """``CarrierBilling`` over the documented HTTP API."""

    def __init__(self, base_url: str, *, name: str = "cmcc", timeout_s: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.name = name
        self.http = JsonClient(base_url, timeout_s=timeout_s, transport=transport)

    def charge(self, *, reference: str, msisdn: str, amount_fen: int, currency: str
               ) -> Answer:
        return self.http.operation("POST", "/v1/charges", {
            "reference": reference, "msisdn": msisdn, "amount_fen": amount_fen,
            "currency": currency})

    def status(self, *, reference: str) -> Answer:
        return self.http.operation("GET", f"/v1/charges/{reference}")


__all__ = ["Answer", "CarrierBilling", "HttpCarrier", "Outcome"]
