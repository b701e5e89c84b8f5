"""Who is asking: the client address that failed authentications are counted by.

The address is the request's peer, as uvicorn gives it: `forecourt api` has it take the client
from X-Forwarded-For only when the peer is a proxy listed in FORWARDED_ALLOW_IPS
(crawler.config), so a client cannot pick its own address by sending the header. An IPv6
client is counted per /64: one host commonly holds a whole /64, and counted per address it
would have 2^64 fresh budgets.
"""

from __future__ import annotations

import ipaddress

from fastapi import Request

KEY_CHARS = 64  # a name a proxy trusted with "*" forwarded is kept this long, no longer


def client_key(request: Request) -> str:
    return address_key(request.client.host if request.client else None)


def address_key(host: str | None) -> str:
    """'198.51.100.7', '2001:db8:1:2::/64'; 'unknown' without an address (a Unix socket)."""
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:KEY_CHARS]
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False))
