"""What the bank and carrier adapters share: the normalised answer and a JSON-over-HTTP call
that turns every transport failure into an outcome instead of an exception.

The one rule that matters for money: only an explicit answer from the partner is an
outcome. A timeout or a 5xx after the request may have arrived is ``UNKNOWN`` (the use case
stays pending and the status-query job asks later); a connection that never opened is
``UNAVAILABLE`` (the partner cannot have acted on it, so the use case may fail at once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    APPROVED = "approved"  # done: money moved at the partner
    REJECTED = "rejected"  # refused for good; ``reason`` says why
    PENDING = "pending"  # accepted, the outcome comes later (ask again)
    UNKNOWN = "unknown"  # no usable answer: the request may or may not have been acted on
    UNAVAILABLE = "unavailable"  # the request never reached the partner
    NOT_FOUND = "not_found"  # status query: the partner has no operation with this reference


SETTLED = (Outcome.APPROVED, Outcome.REJECTED)


@dataclass(frozen=True, slots=True)
class Answer:
    """A partner's answer about one operation (a debit, a credit, a charge)."""

    outcome: Outcome
    reason: str | None = None
    partner_ref: str | None = None

    @classmethod
    def of(cls, body: dict[str, Any]) -> Answer:
        try:
            outcome = Outcome(str(body.get("status")))
        except ValueError:
            outcome = Outcome.UNKNOWN
        if outcome in (Outcome.UNAVAILABLE,):
            outcome = Outcome.UNKNOWN  # only we decide that a request never arrived
        return cls(outcome, _str(body.get("reason")), _str(body.get("partner_ref")))


def _str(value: object) -> str | None:
    return None if value is None else str(value)[:200]


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP exchange: ``status`` is 0 when there was no HTTP answer (see ``outcome``)."""

    status: int
    body: dict[str, Any]
    outcome: Outcome | None = None  # UNKNOWN or UNAVAILABLE when there was no answer


class JsonClient:
    """A small synchronous JSON client around ``httpx.Client`` (thread-safe, pooled)."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        # Connecting is quick or hopeless; reading waits for the partner's work.
        timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout,
                                    transport=transport)

    def call(self, method: str, path: str, json: dict[str, Any] | None = None) -> Reply:
        try:
            resp = self._client.request(method, path, json=json)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            log.warning("%s %s%s: not reachable (%s)", method, self.base_url, path, exc)
            return Reply(0, {}, Outcome.UNAVAILABLE)
        except httpx.HTTPError as exc:  # read timeout, dropped connection...
            log.warning("%s %s%s: no answer (%s)", method, self.base_url, path, exc)
            return Reply(0, {}, Outcome.UNKNOWN)
        if resp.status_code >= 500:
            log.warning("%s %s%s: %s", method, self.base_url, path, resp.status_code)
            return Reply(resp.status_code, {}, Outcome.UNKNOWN)
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return Reply(resp.status_code, {}, Outcome.UNKNOWN)
        return Reply(resp.status_code, body)

    def operation(self, method: str, path: str, json: dict[str, Any] | None = None) -> Answer:
        """A call whose answer is an operation's outcome (debit, credit, charge, status)."""
        reply = self.call(method, path, json)
        if reply.outcome is not None:
            return Answer(reply.outcome)
        if reply.status == 404 and method == "GET":
            return Answer(Outcome.NOT_FOUND)
        if reply.status >= 400:
            # The partner refused the request itself (malformed, reference reused): it did
            # not act on it. Reported as a rejection with the partner's reason.
            return Answer(Outcome.REJECTED, _str(reply.body.get("reason")) or
                          f"http_{reply.status}")
        return Answer.of(reply.body)

    def close(self) -> None:
        self._client.close()
