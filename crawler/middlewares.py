"""Scrapy downloader middlewares of forecourt.

`PlatformRateLimitMiddleware` holds every request to a platform backend until that backend's
shared budget (crawler/ratelimit.py, in Redis) grants it, so any number of crawl processes on
any number of workers stay within one budget per platform. Waiting never blocks the reactor
(the wait is a Twisted timer awaited as a coroutine). The backend of a request is its
`rate_limit_backend` meta key, else the spider's `rate_limit_backend` attribute, else the
spider's name; backends without a configured budget pass straight through. If Redis cannot
be reached the request goes ahead (per-domain limits and AutoThrottle still hold) and the
failure is logged and counted.
"""

from __future__ import annotations

import logging

from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.task import deferLater

from crawler import ratelimit

log = logging.getLogger("forecourt.ratelimit")


class PlatformRateLimitMiddleware:
    def __init__(self, crawler, budgets: dict[str, ratelimit.Budget], redis_url: str,
                 max_wait_s: float):
        self.crawler = crawler
        self.budgets = budgets
        self.redis_url = redis_url
        self.max_wait_s = max_wait_s
        self._limiter: ratelimit.AsyncSharedLimiter | None = None

    @classmethod
    def from_crawler(cls, crawler):
        budgets = ratelimit.budgets()
        if not budgets:
            raise NotConfigured("no platform budgets configured")
        from crawler.db import redis_url

        try:
            url = redis_url()
        except Exception as exc:  # no Redis at all: the crawl still runs, politely
            log.warning("platform rate limits off, no Redis: %s", exc)
            raise NotConfigured("no Redis") from exc
        from scrapy import signals

        from crawler.config import get_settings

        middleware = cls(crawler, budgets, url, get_settings().platform_rate_max_wait_s)
        crawler.signals.connect(middleware.spider_closed, signal=signals.spider_closed)
        return middleware

    async def spider_closed(self, spider=None):
        if self._limiter is not None:
            await self._limiter.client.aclose()
            self._limiter = None

    def _backend(self, request, spider) -> str | None:
        spider = spider or getattr(self.crawler, "spider", None)
        return (request.meta.get("rate_limit_backend")
                or getattr(spider, "rate_limit_backend", None)
                or getattr(spider, "name", None))

    def limiter(self) -> ratelimit.AsyncSharedLimiter:
        if self._limiter is None:
            import redis.asyncio as aredis

            self._limiter = ratelimit.AsyncSharedLimiter(
                aredis.Redis.from_url(self.redis_url, socket_timeout=5))
        return self._limiter

    async def process_request(self, request, spider=None):
        backend = self._backend(request, spider)
        budget = self.budgets.get(backend or "")
        if budget is None or request.meta.get("dont_rate_limit"):
            return None
        stats = self.crawler.stats
        waited = 0.0
        while True:
            try:
                wait = await self.limiter().try_acquire(backend, budget)
            except Exception as exc:  # Redis down mid-crawl: go ahead, say so
                log.warning("rate limit for %s not checked: %s", backend, exc)
                stats.inc_value("forecourt/ratelimit/unchecked")
                return None
            if wait <= 0:
                stats.inc_value(f"forecourt/ratelimit/{backend}/granted")
                if waited:
                    stats.inc_value(f"forecourt/ratelimit/{backend}/waited_ms",
                                    int(waited * 1000))
                return None
            if waited >= self.max_wait_s:
                # never starve: after the longest wait, go (counted, and AutoThrottle holds)
                stats.inc_value(f"forecourt/ratelimit/{backend}/overdue")
                return None
            stats.inc_value(f"forecourt/ratelimit/{backend}/waits")
            step = min(wait, self.max_wait_s - waited)
            from twisted.internet import reactor

            await maybe_deferred_to_future(deferLater(reactor, step, lambda: None))
            waited += step
