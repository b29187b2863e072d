"""What a use case needs from the world, built once per process and handed in.

Services take a ``Context`` rather than reaching for globals, so tests and the demo can
drive the clock and swap gateways for their simulators.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from paycell.clock import Clock, SystemClock
from paycell.config import Settings, get_settings
from paycell.gateways.sms import SmsGateway, build_sms
from paycell.ledger import Ledger

if TYPE_CHECKING:
    from paycell.gateways.bank import BankGateway
    from paycell.gateways.carrier import CarrierBilling


@dataclass
class Context:
    settings: Settings
    engine: Engine
    clock: Clock
    ledger: Ledger
    sms: SmsGateway
    # The bank and the carrier billing system (funding); None when none is configured.
    bank: BankGateway | None = None
    carrier: CarrierBilling | None = None

    def close(self) -> None:
        """Release what the context holds open: the SMPP session (sent, then unbound).
        The engine belongs to whoever made it."""
        close = getattr(self.sms, "close", None)
        if close is not None:
            close()


def build_context(
    engine: Engine, *, settings: Settings | None = None, clock: Clock | None = None,
    sms: SmsGateway | None = None, bank: BankGateway | None = None,
    carrier: CarrierBilling | None = None,
) -> Context:
    """The context; the bank and carrier adapters are built from the settings' URLs (or
    pointed at the mounted simulators, see ``gateways/simulators.py``) unless given. The
    SMS gateway follows ``settings.sms_backend`` (docs/sms.md); an SMPP one is started
    here, its inbound texts going to ``payments.sms_commands.handle_inbound``. Call
    ``close()`` when done with it."""
    from paycell.gateways.simulators import build_gateways

    clock = clock or SystemClock()
    settings = settings or get_settings()
    if bank is None or carrier is None:
        built_bank, built_carrier = build_gateways(settings)
        bank, carrier = bank or built_bank, carrier or built_carrier
    ctx = Context(
        settings=settings,
        engine=engine,
        clock=clock,
        ledger=Ledger(engine, clock),
        sms=sms or build_sms(engine, settings, clock),
        bank=bank,
        carrier=carrier,
    )
    if sms is None:
        from paycell.gateways.smpp import SmppSms

        if isinstance(ctx.sms, SmppSms):
            ctx.sms.start(on_inbound=lambda msisdn, body: _inbound(ctx, msisdn, body))
    return ctx


def _inbound(ctx: Context, msisdn: str, body: str) -> None:
    # Looked up at each call: payments fills it in (and tests replace it).
    from paycell.payments import sms_commands

    sms_commands.handle_inbound(ctx, msisdn, body)
