"""The simulators inside ``paycell serve``: mounted under ``/sim/bank``, ``/sim/carrier`` and
``/sim/merchant`` (the demo merchant receiving notifications, ``merchant_sim.py``) of the
main app when ``settings.simulators`` is on (the default in development), with the
adapters pointed at the server's own address. A newcomer's ``make run`` then binds cards,
tops up and watches merchant notifications arrive with nothing else to start. They keep
their state in memory, per process: run one uvicorn worker (the default) while using them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from paycell.clock import Clock
from paycell.config import Settings
from paycell.gateways.bank import BankGateway, HttpBank
from paycell.gateways.carrier import CarrierBilling, HttpCarrier
from paycell.gateways.sms import SmsGateway

if TYPE_CHECKING:
    from fastapi import FastAPI

    from paycell.gateways.bank_sim import BankSimulator
    from paycell.gateways.carrier_sim import CarrierSimulator

BANK_PATH = "/sim/bank"
CARRIER_PATH = "/sim/carrier"
MERCHANT_PATH = "/sim/merchant"


def simulators_on(settings: Settings) -> bool:
    if settings.simulators is not None:
        return settings.simulators
    return settings.environment == "development"


def own_base_url(settings: Settings) -> str:
    """Where this server can reach itself: a wildcard bind address means loopback."""
    host = settings.host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def merchant_notify_url(settings: Settings, merchant_code: str) -> str:
    """Where the mounted demo merchant takes ``merchant_code``'s notifications."""
    return f"{own_base_url(settings)}{MERCHANT_PATH}/notify/{merchant_code}"


def gateway_urls(settings: Settings) -> tuple[str | None, str | None]:
    """The bank's and the carrier's base URLs: configured, else the mounted simulators."""
    own = own_base_url(settings) if simulators_on(settings) else None
    bank = settings.bank_url or (own + BANK_PATH if own else None)
    carrier = settings.carrier_url or (own + CARRIER_PATH if own else None)
    return bank, carrier


def build_gateways(settings: Settings) -> tuple[BankGateway | None, CarrierBilling | None]:
    bank_url, carrier_url = gateway_urls(settings)
    timeout = settings.gateway_timeout_s
    bank = HttpBank(bank_url, timeout_s=timeout) if bank_url else None
    carrier = (HttpCarrier(carrier_url, name=settings.carrier_name, timeout_s=timeout)
               if carrier_url else None)
    return bank, carrier


def mount_simulators(app: FastAPI, settings: Settings, sms: Callable[[], SmsGateway],
                     clock: Clock | None = None) -> tuple[BankSimulator, CarrierSimulator]:
    """Mount the simulators on ``app``. ``sms`` gives the gateway the bank texts codes
    with (the app's, known once its lifespan has started); the demo merchant reads webhook
    secrets through ``app.state.ctx`` likewise."""
    from paycell.gateways.bank_sim import BankSimulator
    from paycell.gateways.carrier_sim import CarrierSimulator
    from paycell.gateways.merchant_sim import MerchantSimulator, secrets_from_context

    # A "timeout" behaviour must outlast the adapter's patience.
    hang = settings.gateway_timeout_s + 5
    bank = BankSimulator(sms, clock=clock, secret=settings.secret_key, hang_s=hang)
    carrier = CarrierSimulator(clock=clock, hang_s=hang)
    app.mount(BANK_PATH, bank.app())
    app.mount(CARRIER_PATH, carrier.app())
    merchant = MerchantSimulator(secrets_from_context(lambda: app.state.ctx), clock=clock)
    app.mount(MERCHANT_PATH, merchant.app())
    app.state.simulators = (bank, carrier)
    app.state.merchant_sim = merchant
    return bank, carrier
