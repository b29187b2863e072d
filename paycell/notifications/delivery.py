"""Delivering notifications (filled in by the notifications work)."""

from __future__ import annotations

from paycell.context import Context


def deliver_due(ctx: Context) -> int:
    """Worker job: deliver every notification that is due; how many attempts were made."""
    return 0
