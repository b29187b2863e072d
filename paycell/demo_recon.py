"""The demo world's part on reconciliation: statements from the bank (GBK), the carrier
and the transit operator, reconciled against the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.console import Console

from paycell.clock import ManualClock
from paycell.context import Context


@dataclass
class ReconDemo:
    pass


def load_recon_demo(ctx: Context, clock: ManualClock, start: datetime,
                     out_dir: Path | None = None) -> ReconDemo | None:
    """Add this part to the demo world. ``start`` is midnight (CST) of the demo's first
    day; ``clock`` is ``ctx``'s, set half an hour after the last traffic. Idempotent."""
    return None


def print_recon_summary(console: Console, d: ReconDemo) -> None:
    """The summary's part on reconciliation."""
