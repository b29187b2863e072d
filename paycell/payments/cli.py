"""``paycell payments ...``."""

from __future__ import annotations

import typer

payments_app = typer.Typer(help="payments", no_args_is_help=True)
