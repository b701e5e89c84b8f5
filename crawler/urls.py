"""Checks on URLs users give forecourt."""

from __future__ import annotations

from urllib.parse import urlparse

from crawler.errors import InvalidInput


def check_http_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidInput(f"{url!r} is not an http(s) URL",
                           hint="give a full address such as https://dealer.example/")
    from crawler import netguard  # no loopback, private or metadata addresses (SSRF)

    return netguard.check_url(url)
