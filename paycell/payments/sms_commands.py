"""Texts from subscribers: BAL, PAY, TRF and confirmation codes (filled in by payments)."""

from __future__ import annotations

from paycell.context import Context


def handle_inbound(ctx: Context, msisdn: str, body: str) -> None:
    """Act on a text received from ``msisdn``; replies go out through ``ctx.sms``."""
