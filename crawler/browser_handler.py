"""The http/https download handler of every crawl: Scrapy's HTTP, and Chromium on demand.

A request without `meta["playwright"]` is downloaded by Scrapy's own HTTP/1.1 handler (this
class is one), exactly as without this module. The first request that asks for the browser
builds scrapy-playwright's download handler and starts Playwright; scrapy-playwright then
launches Chromium for its first page (`_maybe_launch_browser`, on the first context). Why not
install scrapy-playwright's handler directly: it starts the Playwright driver (a Node.js
process) when the engine starts, so every crawl would pay for a process it may never use
(measured with scrapy-playwright 0.0.48: a plain crawl with that handler has a `node` child
and no Chromium). Here a crawl that never renders starts neither.

Scrapy builds one handler per scheme (http, https); both share one browser per crawl.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from scrapy.core.downloader.handlers.http11 import HTTP11DownloadHandler

from crawler import browser, rendering
from crawler.errors import RenderTimeout

logger = logging.getLogger(__name__)


class _Browser:
    """The crawl's scrapy-playwright handler, started by the first request that needs it."""

    def __init__(self, crawler):
        self.crawler = crawler
        self.handler: Any = None
        self.lock = asyncio.Lock()
        self.closed = False

    async def get(self):
        async with self.lock:
            if self.handler is None:
                if self.closed:
                    raise RuntimeError("the crawl's browser is closed")
                options = self.crawler.settings.getdict("PLAYWRIGHT_LAUNCH_OPTIONS")
                if not options.get("executable_path"):
                    browser.chromium_path()  # raises ConfigError with the fix
                from scrapy_playwright.handler import ScrapyPlaywrightDownloadHandler

                handler = ScrapyPlaywrightDownloadHandler.from_crawler(self.crawler)
                # scrapy-playwright starts Playwright on engine_started, which has passed:
                # start it the way that signal would have.
                await handler._maybe_launch_in_thread()
                self.handler = handler
                self.crawler.stats.set_value("forecourt/browser/started", 1)
                logger.info("headless browser started for the first rendered page")
            return self.handler

    async def close(self) -> None:
        async with self.lock:
            self.closed = True
            handler, self.handler = self.handler, None
        if handler is not None:
            await handler.close()


async def render(handler, request, stats):
    """Download `request` through scrapy-playwright with a fresh PageWatch for this attempt
    (crawler/rendering.py): the page loads, settles, shows all it has, and must end within
    render_timeout_s of opening. scrapy-playwright bounds its navigation but not the rest
    (reading the page's HTML waits on the page's own thread, which an endless script holds
    for ever), and a crawl stuck on one page would hold its worker until the crawl's time
    limit and then fail whole. Past the deadline the page is closed and the request fails
    with RenderTimeout; its watch's notes go in the response's meta otherwise."""
    watch = rendering.PageWatch()
    request.meta.pop(rendering.NOTES, None)
    request.meta["playwright_page_goto_kwargs"] = {"wait_until": "load"}
    request.meta["playwright_page_methods"] = rendering.page_methods(
        watch, request.meta.get(rendering.WAIT_FOR))
    request.meta["playwright_page_init_callback"] = watch.attach
    limit = asyncio.timeout(None)  # started when the page opens, not while it queues
    loop = asyncio.get_running_loop()
    watch.on_open = lambda seconds: limit.reschedule(loop.time() + seconds)
    try:
        async with limit:
            response = await handler.download_request(request)
    except TimeoutError:
        if not limit.expired():
            raise
        stats.inc_value("forecourt/rendered/timed_out")
        try:
            if await watch.close():
                stats.inc_value("playwright/page_count/closed")
        except Exception as exc:  # the browser itself is stuck: the crawl's end closes it
            logger.warning("could not close the timed-out page %s: %s", request.url, exc)
        raise RenderTimeout(
            f"rendering took longer than {watch.timeout_s:g} s (its scripts never finished; "
            f"the page was closed)") from None
    request.meta[rendering.NOTES] = watch.notes
    return response


def _shared(crawler) -> _Browser:
    found = getattr(crawler, "_forecourt_browser", None)
    if found is None:
        found = _Browser(crawler)
        crawler._forecourt_browser = found
    return found


class BrowserOnDemandHandler(HTTP11DownloadHandler):
    """HTTP/1.1 for plain requests; scrapy-playwright, started lazily, for rendered ones."""

    def __init__(self, crawler):
        super().__init__(crawler)
        self._browser = _shared(crawler)

    @property
    def browser_started(self) -> bool:
        return self._browser.handler is not None

    async def download_request(self, request):
        if not request.meta.get("playwright"):
            return await super().download_request(request)
        handler = await self._browser.get()
        return await render(handler, request, self._browser.crawler.stats)

    async def close(self) -> None:
        await super().close()
        await self._browser.close()
