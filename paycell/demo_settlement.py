"""The demo world's part on commission rules, cleared business days, payouts and a returned one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.console import Console

from paycell.clock import ManualClock
from paycell.context import Context


@dataclass
class SettlementDemo:
    pass


def load_settlement_demo(ctx: Context, clock: ManualClock, start: datetime,
                     out_dir: Path | None = None) -> SettlementDemo | None:
    """Add this part to the demo world. ``start`` is midnight (CST) of the demo's first
    day; ``clock`` is ``ctx``'s, set half an hour after the last traffic. Idempotent."""
    return None


def print_settlement_summary(console: Console, d: SettlementDemo) -> None:
    """The summary's part on commission rules, cleared business days, payouts and a returned one."""
