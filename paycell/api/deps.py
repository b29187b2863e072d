"""FastAPI dependencies: the objects the app's lifespan keeps on ``app.state``."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy import Engine

from paycell.config import Settings
from paycell.context import Context
from paycell.ledger.batcher import Batcher
from paycell.ledger.store import Ledger


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


async def get_batcher(request: Request) -> Batcher:
    """The group-commit batcher: routes that move money ``await batcher.post_async(...)``."""
    batcher: Batcher = request.app.state.batcher
    return batcher


async def get_context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx
