"""The reconciliation tests' fixtures: the cash tests' app (ManualClock, workers off, an
audit of the ledger after each test)."""

from __future__ import annotations

from cash_helpers import client, clock, ctx, settings  # type: ignore[import-not-found]

__all__ = ["client", "clock", "ctx", "settings"]
