"""The recon benchmark (`paycell bench recon`, part of `make bench`)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console


def main(databases: list[str], *, rows: int, out: Path, console: Console) -> None:
    """Measure on each database, print a table beside the baseline, write JSON to ``out``."""
    raise NotImplementedError
