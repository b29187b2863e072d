"""``paycell onsite ...``: cards, terminals, e-cash clearing, OTA jobs."""

from __future__ import annotations

import typer

onsite_app = typer.Typer(help="On-site payment: NFC SIM cards, POS terminals, transit "
                         "e-cash, OTA.", no_args_is_help=True)
