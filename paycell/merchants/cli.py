"""``paycell merchants ...``."""

from __future__ import annotations

import typer

merchants_app = typer.Typer(help="merchants", no_args_is_help=True)
