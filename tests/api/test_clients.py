"""The client address failed authentications are counted by (pure logic: the request's
address, already taken from X-Forwarded-For by uvicorn where the peer is a trusted proxy)."""

from __future__ import annotations

import pytest

from jobs.api.clients import address_key


@pytest.mark.parametrize("host, key", [
    ("198.51.100.7", "198.51.100.7"),
    # one IPv6 host commonly holds a whole /64: counted per address it would have 2^64 tries
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
    ("::ffff:198.51.100.7", "198.51.100.7"),  # an IPv4 client on a dual-stack socket
    ("::1", "::/64"),
    (None, "unknown"),  # no peer address (a Unix socket)
    ("", "unknown"),
    ("not-an-address", "not-an-address"),  # forwarded by a proxy trusted with "*"
    ("x" * 500, "x" * 64),
])
def test_clients_are_counted_per_ipv4_address_and_per_ipv6_64(host, key):
    assert address_key(host) == key
