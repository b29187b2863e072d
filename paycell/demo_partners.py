"""The demo world's part on channel partners, their merchants and terminals, fees accrued."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.console import Console

from paycell.clock import ManualClock
from paycell.context import Context


@dataclass
class PartnersDemo:
    pass


def load_partners_demo(ctx: Context, clock: ManualClock, start: datetime,
                     out_dir: Path | None = None) -> PartnersDemo | None:
    """Add this part to the demo world. ``start`` is midnight (CST) of the demo's first
    day; ``clock`` is ``ctx``'s, set half an hour after the last traffic. Idempotent."""
    return None


def print_partners_summary(console: Console, d: PartnersDemo) -> None:
    """The summary's part on channel partners, their merchants and terminals, fees accrued."""
