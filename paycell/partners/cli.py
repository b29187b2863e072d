"""``paycell partners``: channel partners and their fees."""

from __future__ import annotations

import typer

partners_app = typer.Typer(help="Channel partners: docs/partners.md.", no_args_is_help=True)
