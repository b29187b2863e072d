"""What the CLI modules share: the database option and a context that turns a business
refusal into a one-line message and exit status 1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from paycell.console import console
from paycell.context import Context, build_context
from paycell.errors import PaycellError

UrlOpt = typer.Option(None, "--database-url", help="defaults to PAYCELL_DATABASE_URL")


@contextmanager
def cli_context(database_url: str | None, **settings_update: object) -> Iterator[Context]:
    """A Context on the given (or configured) database, disposed of afterwards.

    ``settings_update`` overrides settings for this command (None values are ignored).
    """
    from paycell.config import get_settings
    from paycell.db import make_engine

    settings = get_settings()
    update = {k: v for k, v in settings_update.items() if v is not None}
    if update:
        settings = settings.model_copy(update=update)
    engine = make_engine(database_url or settings.database_url)
    try:
        yield build_context(engine, settings=settings)
    except PaycellError as exc:
        console.print(f"[red]{exc.code}[/]: {exc.message}")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
