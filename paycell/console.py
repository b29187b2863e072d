"""The CLI's console, sized when it prints rather than when it is imported.

A module-level ``rich.console.Console()`` fixes its width at import: the width of whatever
terminal first imported the module, not of the command being run (or of ``COLUMNS``).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console


class LazyConsole:
    def now(self) -> Console:
        """A console for the command being run (e.g. for a progress bar)."""
        return Console()

    def print(self, *args: Any, **kwargs: Any) -> None:
        Console().print(*args, **kwargs)


console = LazyConsole()
