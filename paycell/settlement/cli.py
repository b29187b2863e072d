"""``paycell settle``: clearing, settlement payouts and commission rules."""

from __future__ import annotations

import typer

settle_app = typer.Typer(help="Clearing (清分) and settlement (结算): docs/settlement.md.",
                         no_args_is_help=True)
