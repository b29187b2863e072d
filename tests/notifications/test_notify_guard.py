"""Notifications go to public addresses only, unless private ones are allowed (SSRF guard):
IP literals refused when a URL is given, every resolved address checked before delivery,
nothing sent to a private one."""

from __future__ import annotations

import pytest
from notify_helpers import (  # type: ignore[import-not-found]
    MerchantServer,
    clock,
    ctx,
    make_settings,
    merchant_server,
    new_merchant,
    notify,
)
from sqlalchemy import Engine

from paycell.clock import ManualClock
from paycell.config import Settings
from paycell.context import build_context
from paycell.merchants import service as merchants
from paycell.merchants.errors import MerchantInvalidError
from paycell.notifications import delivery, guard, service

__all__ = ["clock", "ctx", "merchant_server"]


@pytest.mark.parametrize("host", [
    "127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254", "0.0.0.0",
    "100.64.0.1", "224.0.0.1", "::1", "[::1]", "fc00::1", "fe80::1", "::ffff:127.0.0.1"])
def test_private_literals_are_refused(host: str) -> None:
    assert guard.literal_refusal(host) is not None


@pytest.mark.parametrize("host", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888",
                                  "merchant.example"])
def test_public_literals_and_names_pass_the_literal_check(host: str) -> None:
    assert guard.literal_refusal(host) is None


def test_names_are_resolved_before_delivery() -> None:
    assert "not a public address" in (guard.refusal("http://localhost:8080/hook") or "")
    assert "does not resolve" in (guard.refusal("http://no-such-host.invalid/") or "")
    assert guard.refusal("https://[2001:4860:4860::8888]/hook") is None


def test_private_addresses_are_allowed_in_development_only_by_default(db_url: str) -> None:
    assert guard.private_allowed(make_settings(db_url))  # development
    assert not guard.private_allowed(make_settings(db_url, notify_private_addresses=False))
    prod = Settings.model_construct(environment="production", notify_private_addresses=None)
    assert not guard.private_allowed(prod)


def test_a_private_destination_gets_nothing(engine: Engine, db_url: str, clock: ManualClock,
                                            merchant_server: MerchantServer) -> None:
    ctx = build_context(engine, clock=clock,
                        settings=make_settings(db_url, notify_private_addresses=False))
    srv = merchant_server
    mid = new_merchant(ctx, srv)
    nid = notify(ctx, mid, srv.url)  # the loopback merchant: private
    assert delivery.deliver_due(ctx) == 1
    d = service.get_notification(ctx, nid)
    a = d.attempt_log[0]
    assert (a.error, a.acknowledged, a.status_code) == ("address_forbidden", False, None)
    assert "127.0.0.1" in (a.response_snippet or "")
    assert d.notification.state == "pending"  # retried on schedule, like any failure
    assert srv.received == []


def test_a_merchant_cannot_name_a_private_literal(engine: Engine, db_url: str,
                                                  clock: ManualClock) -> None:
    ctx = build_context(engine, clock=clock,
                        settings=make_settings(db_url, notify_private_addresses=False))
    mid = new_merchant(ctx)
    with pytest.raises(MerchantInvalidError) as err:
        merchants.set_notify_url(ctx, mid, "http://169.254.169.254/latest/meta-data", "t")
    assert err.value.detail["field"] == "notify_url"
    assert merchants.get_merchant(ctx, mid).default_notify_url != (
        "http://169.254.169.254/latest/meta-data")
    merchants.set_notify_url(ctx, mid, "https://merchant.example/hook", "t")
    assert merchants.get_merchant(ctx, mid).default_notify_url == (
        "https://merchant.example/hook")
