"""Outbound safety for crawls: every request, redirects included, goes only to allowed addresses.

Two parts, both switched on in crawler/settings.py:
- `NetGuardMiddleware`, a downloader middleware placed before every other one, checks each
  request that reaches the downloader (start URLs, links, robots.txt, sitemaps, and every
  redirect, which Scrapy sends through the whole middleware chain again). A refused request is
  dropped with IgnoreRequest (so its errback records the page as failed), counted in the
  stats under `forecourt/netguard/refused` and recorded as a problem of the run.
- `NetGuardResolver`, the crawl's DNS resolver, checks the address a connection is actually
  about to use. The middleware resolves through it too, so both see the same cached answer,
  and a name that re-resolves to a forbidden address later (DNS rebinding) is refused at
  connection time.

Residual risk: pages rendered in Chromium (scrapy-playwright) fetch their sub-resources
through the browser's own network stack; only the page request itself is checked here.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.resolver import CachingThreadedResolver
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet import defer
from twisted.internet.error import DNSLookupError

from crawler import netguard
from crawler.errors import UnsafeURL

logger = logging.getLogger(__name__)
STAT = "forecourt/netguard/refused"

# host -> reason, for names the resolver refused (the connection error loses the reason).
_refused_hosts: dict[str, str] = {}


class ForbiddenAddress(DNSLookupError):
    """The resolver's answer is a forbidden address; raised instead of returning it."""


class NetGuardResolver(CachingThreadedResolver):
    """Scrapy's caching resolver, refusing answers that are forbidden addresses."""

    def getHostByName(self, name: str, timeout: Any = ()):
        d = super().getHostByName(name, timeout)
        d.addCallback(self._check, name)
        return d

    @staticmethod
    def _check(address: str, name: str) -> str:
        try:
            netguard.check_address(name, address)
        except UnsafeURL as exc:
            _refused_hosts[netguard._norm_host(name)] = str(exc)
            raise ForbiddenAddress(str(exc)) from None
        return address


class NetGuardMiddleware:
    """Refuses requests to forbidden addresses and records each refusal."""

    def __init__(self, crawler):
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler):
        if not crawler.settings.getbool("NETGUARD_ENABLED", True):
            raise NotConfigured("NETGUARD_ENABLED is off")
        return cls(crawler)

    async def process_request(self, request, spider=None):
        try:
            host, _ = netguard.check_static(request.url)
            if netguard.literal_ip(host) is None:
                await maybe_deferred_to_future(self._resolve(host))
        except ForbiddenAddress as exc:
            self._refuse(request, str(exc))
        except UnsafeURL as exc:
            self._refuse(request, str(exc))
        except DNSLookupError:
            return None  # not resolvable: the download fails on its own
        return None

    def process_exception(self, request, exception, spider=None):
        # The resolver refused at connection time (its reason is not in the exception).
        if isinstance(exception, DNSLookupError):
            host = netguard._norm_host(urlsplit(request.url).hostname or "")
            reason = _refused_hosts.get(host)
            if reason:
                self._record(request, reason)
        return None

    def _resolve(self, host: str) -> defer.Deferred:
        from twisted.internet import reactor

        return reactor.resolve(host)

    def _record(self, request, reason: str) -> None:
        self.crawler.stats.inc_value(STAT)
        spider = self.crawler.spider
        problems = getattr(spider, "problems", None)
        message = f"unsafe URL {request.url}: {reason}"
        if isinstance(problems, list) and message not in problems:
            problems.append(message)
        logger.warning("netguard %s", message)

    def _refuse(self, request, reason: str) -> None:
        self._record(request, reason)
        raise IgnoreRequest(f"netguard {reason}")
