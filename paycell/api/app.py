"""The FastAPI application factory: ``uvicorn --factory paycell.api.app:create_app``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy import Engine

from paycell import __version__
from paycell.api import health, routing
from paycell.api.errors import install_error_handlers
from paycell.clock import Clock
from paycell.config import Settings, get_settings
from paycell.context import build_context
from paycell.db import make_engine
from paycell.funding import api as funding_api
from paycell.funding import cash_api
from paycell.gateways.simulators import mount_simulators, simulators_on
from paycell.ledger import api as ledger_api
from paycell.ledger.batcher import Batcher
from paycell.merchants import api as merchants_api
from paycell.notifications import api as notifications_api
from paycell.onsite import cards_api, ecash_api, ota_api, terminals_api
from paycell.operators import api as operators_api
from paycell.partners import api as partners_api
from paycell.payments import api as payments_api
from paycell.reconciliation import api as reconciliation_api
from paycell.settlement import api as settlement_api
from paycell.subscribers import api as subscribers_api
from paycell.worker import Worker

log = logging.getLogger(__name__)

DESCRIPTION = """\
paycell: a mobile payment platform (wallets, merchants, NFC, settlement) on one
double-entry ledger.

* Amounts are integer **fen** (1/100 CNY) with a separate `currency`; times are RFC 3339 UTC.
* Every error is RFC 9457 `application/problem+json` with a stable machine `code`.
* Lists are cursor-paginated: pass back `next_cursor` as `cursor` until it is null.
* Operator endpoints need the `X-API-Key` header.
"""


def create_app(
    settings: Settings | None = None, *, engine: Engine | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """Build the app. Its lifespan opens the engine (unless one is given), the ledger, the
    group-commit batcher and, if ``settings.run_workers``, the background worker; on
    shutdown it stops the worker, drains the batcher and disposes of the engine it opened
    (an engine passed in belongs to the caller and is left open)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        eng = engine if engine is not None else make_engine(settings.database_url)
        ctx = build_context(eng, settings=settings, clock=clock)
        ledger = ctx.ledger
        app.state.ctx = ctx
        batcher = Batcher(ledger, settings.batch_max)
        worker = Worker(ledger, settings, ctx=ctx) if settings.run_workers else None
        app.state.engine, app.state.ledger = eng, ledger
        app.state.batcher, app.state.worker = batcher, worker
        app.state.desks = {}  # api/desk.py: made on first use
        app.state.desk_log_dir = settings.desk_log_dir or None
        if worker is not None:
            worker.start()
        log.info("paycell %s on %s (workers %s)", __version__, eng.dialect.name,
                 "in process" if worker else "off")
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()
            for desk in app.state.desks.values():
                desk.close()
            ctx.close()  # the SMS gateway: sends what is queued, unbinds from the SMSC
            batcher.close()
            if engine is None:
                eng.dispose()

    app = FastAPI(
        title="paycell",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        telemetry=None if settings.otel else {"tracing": False, "metrics": False,
                                               "logs": False},
    )
    app.state.settings = settings
    install_error_handlers(app)
    known = routing.include(app, [
        ("", [health.router]),
        ("/v1", [ledger_api.router, *subscribers_api.routers, *cash_api.routers,
                 *funding_api.routers]),
        ("/v1", [router for module in (
            operators_api, merchants_api, payments_api, notifications_api, cards_api,
            terminals_api, ecash_api, ota_api, settlement_api, partners_api,
            reconciliation_api) for router in module.routers]),
    ])
    if simulators_on(settings):  # the loopback bank and carrier: docs/gateways.md
        mount_simulators(app, settings, lambda: app.state.ctx.sms, clock=clock)
    routing.index(app, known, lean=settings.lean_routes)
    return app
