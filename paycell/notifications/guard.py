"""Where notifications may go: public addresses only, unless the operator allows private ones.

A merchant chooses its notify URL, and the platform POSTs to it from inside the operator's
network. Without a guard a merchant could aim those requests at the operator's own
services (``127.0.0.1``, ``10.x``, a cloud metadata address such as ``169.254.169.254``):
server-side request forgery. Like Stripe's webhooks, the platform refuses destinations that
are not public:

- when a URL is given, a literal IP address that is not public is refused at once
  (``notify_url_invalid``);
- before each delivery the host name is resolved and every address it gives is checked;
  a private one fails the attempt as ``address_forbidden`` and nothing is sent.

``PAYCELL_NOTIFY_PRIVATE_ADDRESSES`` decides; unset, private addresses are allowed only in
``development`` (the demo's merchant simulator and the tests' merchant listen on loopback).
The check resolves the name shortly before httpx resolves it again to connect, so a DNS
server that answers differently the second time (rebinding) is not stopped by it; an
egress proxy or firewall is the place for that stronger guarantee.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from paycell.config import Settings


def private_allowed(settings: Settings) -> bool:
    if settings.notify_private_addresses is not None:
        return settings.notify_private_addresses
    return settings.environment == "development"


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def literal_refusal(host: str) -> str | None:
    """Why ``host`` may not be a destination if it is an IP literal that is not public;
    None for a public literal or a host name (checked when delivering)."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return None if _public(ip) else f"{ip} is not a public address"


def url_refusal(settings: Settings, url: str | None) -> str | None:
    """Why ``url`` may not be given as a notify URL now: its host is an IP literal that is
    not public and private addresses are not allowed. Host names are checked at delivery."""
    if url is None or private_allowed(settings):
        return None
    return literal_refusal(urlsplit(url).hostname or "")


def refusal(url: str) -> str | None:
    """Why a delivery to ``url`` must not be attempted: a host that does not resolve, or
    one with any address that is not public; None if every address is public."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    why = literal_refusal(host)
    if why is not None:
        return why
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError, UnicodeError) as exc:
        return f"{host} does not resolve: {exc}"[:200]
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not _public(ip):
            return f"{host} resolves to {ip}, which is not a public address"
    return None
