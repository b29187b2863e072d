"""``paycell operators ...``."""

from __future__ import annotations

import typer

operators_app = typer.Typer(help="operators", no_args_is_help=True)
