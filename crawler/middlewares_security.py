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

`DownloadFaultsMiddleware` (same file: the crawl's limits are part of its safety) counts the
downloads that failed for good (after Scrapy's retries) by cause: timed out
(DOWNLOAD_TIMEOUT), connection refused/lost/reset, cut off at DOWNLOAD_MAXSIZE, HTTP 5xx,
host not found; at the end it records one summary problem for the run report, so a job says
why its crawl was incomplete.

Residual risk: pages rendered in Chromium (scrapy-playwright) fetch their sub-resources
through the browser's own network stack; only the page request itself is checked here.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from scrapy.downloadermiddlewares.httpcompression import HttpCompressionMiddleware
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.resolver import CachingThreadedResolver
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet import defer
from twisted.internet.error import DNSLookupError

from crawler import netguard
from crawler.errors import ForecourtError, UnsafeURL

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


FAULT_KINDS = (
    ("RenderTimeout", "rendering timed out (FORECOURT_RENDER_TIMEOUT_S)"),
    ("DownloadTimeoutError", "timed out"), ("TimeoutError", "timed out"),
    ("DownloadCancelledError", "cut off at the size limit"),
    ("CancelledError", "cut off at the size limit"),
    ("DownloadConnectionRefusedError", "connection refused"),
    ("ConnectionRefusedError", "connection refused"),
    ("CannotResolveHostError", "host not found"), ("DNSLookupError", "host not found"),
    ("ResponseDataLossError", "connection lost mid-response"),
)


def fault_kind(exception: BaseException) -> str:
    names = [c.__name__ for c in type(exception).__mro__]
    if "TimeoutError" in names and type(exception).__module__.startswith("playwright"):
        return "page load timed out in the browser (PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT)"
    for name, kind in FAULT_KINDS:
        if name in names:
            return kind
    if isinstance(exception, ForecourtError):  # never sent: forecourt could not (no browser)
        return f"not sent ({type(exception).__name__})"
    return "connection lost or reset"


def count_fault(crawler, request, kind: str) -> None:
    if urlsplit(request.url).path == "/robots.txt":
        return  # robots.txt is optional; its absence is no fault of the site
    crawler.stats.inc_value(f"forecourt/download_faults/{kind}")


class ResponseTooLarge(Exception):
    """A response expanded past DOWNLOAD_MAXSIZE when decompressed (a compression bomb)."""


class HttpCompressionLimitMiddleware(HttpCompressionMiddleware):
    """Scrapy's decompression, where a body that expands past DOWNLOAD_MAXSIZE is a failed
    download (the page's errback sees it, the run is incomplete) rather than a request the
    spider chose to ignore, which could let an unseen vehicle look sold."""

    @classmethod
    def from_crawler(cls, crawler):
        mw = super().from_crawler(crawler)
        mw._fc_crawler = crawler
        return mw

    def process_response(self, request, response, spider=None):
        try:
            return super().process_response(request, response)
        except IgnoreRequest as exc:
            count_fault(self._fc_crawler, request, "cut off at the size limit")
            raise ResponseTooLarge(str(exc)) from None


class DownloadFaultsMiddleware:
    """Counts downloads that failed for good, by cause, and reports them when the crawl ends."""

    def __init__(self, crawler):
        from scrapy import signals

        self.crawler = crawler
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def _count(self, request, kind: str) -> None:
        count_fault(self.crawler, request, kind)

    def process_response(self, request, response, spider=None):
        if response.status >= 500:
            self._count(request, f"HTTP {response.status}")
        return response

    def process_exception(self, request, exception, spider=None):
        if not isinstance(exception, IgnoreRequest):
            self._count(request, fault_kind(exception))
        return None

    def spider_closed(self, spider, reason):
        prefix = "forecourt/download_faults/"
        faults = {k[len(prefix):]: int(v) for k, v in self.crawler.stats.get_stats().items()
                  if k.startswith(prefix) and v}
        if not faults:
            return
        settings = self.crawler.settings
        limits = {"timed out": f" (DOWNLOAD_TIMEOUT {settings.getfloat('DOWNLOAD_TIMEOUT'):g} s)",
                  "cut off at the size limit":
                      f" (DOWNLOAD_MAXSIZE {settings.getint('DOWNLOAD_MAXSIZE')} bytes)"}
        summary = ", ".join(f"{n} {kind}{limits.get(kind, '')}"
                            for kind, n in sorted(faults.items()))
        problems = getattr(spider, "problems", None)
        if isinstance(problems, list):
            problems.append(f"downloads failed: {summary}")
        logger.warning("downloads failed: %s", summary)
