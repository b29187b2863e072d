"""What a use case needs from the world, built once per process and handed in.

Services take a ``Context`` rather than reaching for globals, so tests and the demo can
drive the clock and swap gateways for their simulators.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from paycell.clock import Clock, SystemClock
from paycell.config import Settings, get_settings
from paycell.gateways.sms import RecordingSms, SmsGateway
from paycell.ledger import Ledger


@dataclass
class Context:
    settings: Settings
    engine: Engine
    clock: Clock
    ledger: Ledger
    sms: SmsGateway


def build_context(
    engine: Engine, *, settings: Settings | None = None, clock: Clock | None = None,
    sms: SmsGateway | None = None,
) -> Context:
    clock = clock or SystemClock()
    return Context(
        settings=settings or get_settings(),
        engine=engine,
        clock=clock,
        ledger=Ledger(engine, clock),
        sms=sms or RecordingSms(engine, clock),
    )
