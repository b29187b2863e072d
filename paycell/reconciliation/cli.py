"""``paycell reconcile``: statement files from banks, the carrier and the transit operator."""

from __future__ import annotations

import typer

reconcile_app = typer.Typer(help="Reconciliation (对账): docs/reconciliation.md.",
                            no_args_is_help=True)
