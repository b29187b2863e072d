"""``paycell notifications ...``."""

from __future__ import annotations

import typer

notifications_app = typer.Typer(help="notifications", no_args_is_help=True)
