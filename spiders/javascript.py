"""Dealer sites whose listing pages show vehicles only after their scripts run.

The page is rendered in headless Chromium through scrapy-playwright, then extracted from the
rendered DOM like any other page: schema.org data first, else `data-*` vehicle cards
(spiders.extract.attributes). Only this spider turns the browser on: its settings add the
Playwright download handler, so every other crawl keeps plain HTTP and never starts a browser.

Resources are bounded so memory stays flat on long crawls: images, fonts and media are never
fetched (PLAYWRIGHT_ABORT_REQUEST), contexts and pages per context are capped (config
`playwright_max_contexts`, `playwright_max_pages_per_context`), and pages are never handed to
callbacks, so scrapy-playwright closes each one as soon as its HTML is read. Browser-side
requests to private or metadata addresses named literally are aborted too (crawler.netguard).

Per-dealer settings: `wait_for` (a CSS selector to wait for instead of network idle),
`listing_urls` (more listing pages to start from) and `extract_as` (a platform, e.g.
`dealervenom`, whose result pages need the browser: its extractor and pager read the
rendered page, and its detail pages or API, which do not need the browser, are fetched over
plain HTTP; the listing card stands in when one fails).
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from urllib.parse import urljoin

import scrapy
from parsel import Selector

from crawler.config import get_settings
from crawler.errors import ConfigError, ForecourtError
from crawler.models import VehicleItem
from crawler.spider import CardSiteSpider
from spiders import registry
from spiders.extract import attributes, structured

PLATFORM = "javascript"
HANDLER = "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
BLOCKED_RESOURCES = frozenset({"image", "font", "media"})
# what the abort predicate refused in this process, by reason (copied into crawl stats)
ABORTED: Counter = Counter()


def chromium_path() -> str:
    """The system Chromium (config `chromium_path`, else /usr/bin/chromium or PATH)."""
    configured = get_settings().chromium_path
    for candidate in (configured, "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise ConfigError("no Chromium for JavaScript sites"
                      + (f" at {configured}" if configured else ""),
                      hint="apt-get install -y chromium, or set FORECOURT_CHROMIUM_PATH")


def should_abort_request(request) -> bool:
    """PLAYWRIGHT_ABORT_REQUEST: skip heavy resources and unsafe browser-side requests."""
    if request.resource_type in BLOCKED_RESOURCES:
        ABORTED[request.resource_type] += 1
        return True
    if request.url.startswith(("http://", "https://")):
        from crawler import netguard

        try:
            netguard.check_static(request.url)
        except ForecourtError:
            ABORTED["unsafe"] += 1
            return True
    return False


def playwright_settings(block_resources: bool = True) -> dict:
    """The Scrapy settings that route `meta={"playwright": True}` requests to Chromium."""
    s = get_settings()
    return {
        "DOWNLOAD_HANDLERS": {"http": HANDLER, "https": HANDLER},
        "PLAYWRIGHT_BROWSER_TYPE": "chromium",
        "PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": chromium_path(), "headless": True,
                                      "args": CHROMIUM_ARGS},
        "PLAYWRIGHT_ABORT_REQUEST": should_abort_request if block_resources else None,
        "PLAYWRIGHT_MAX_CONTEXTS": s.playwright_max_contexts,
        "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": s.playwright_max_pages_per_context,
        "PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT": 30_000,
    }


def extract(html: str, page_url: str) -> list[VehicleItem]:
    """Vehicles in a rendered page: schema.org data, else data-* vehicle cards."""
    return structured.extract(html, page_url) or attributes.extract(html, page_url)


def render_meta(wait_for: str | None = None) -> dict:
    from scrapy_playwright.page import PageMethod

    meta: dict = {"playwright": True}
    if wait_for:
        meta["playwright_page_methods"] = [PageMethod("wait_for_selector", wait_for)]
    else:
        meta["playwright_page_goto_kwargs"] = {"wait_until": "networkidle"}
    return meta


class Spider(CardSiteSpider):
    """Listing pages rendered in Chromium; with `extract_as`, detail pages over plain HTTP."""

    name = "javascript"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.platform = self.dealer_settings.get("extract_as")
        self.platform_module = registry.platforms().get(self.platform) if self.platform else None
        if self.platform and self.platform_module is None:
            raise ValueError(f"extract_as names no platform: {self.platform!r}")

    @classmethod
    def update_settings(cls, settings):
        super().update_settings(settings)
        settings.setdict(playwright_settings(), priority="spider")

    def listing_request(self, url: str) -> scrapy.Request:
        return scrapy.Request(url, meta=render_meta(self.dealer_settings.get("wait_for")),
                              callback=self.parse_listing, errback=self.listing_failed)

    def extract_page(self, text: str, url: str) -> list[VehicleItem]:
        if self.platform_module is not None:
            items = self.platform_module.extract(text, url)
            if items:
                return items
        return extract(text, url)

    def next_page_url(self, text: str, url: str) -> str | None:
        following = getattr(self.platform_module, "next_page", None)
        if following is not None:
            found = following(text, url)
            if found:
                return found
        href = Selector(text=text).css("a[rel~='next']::attr(href)").get()
        return urljoin(url, href) if href else None

    def detail_url(self, card, text: str, page_url: str) -> str | None:
        """Detail pages (fetched without the browser) only for a platform's cards."""
        if self.platform_module is None:
            return None
        pick = getattr(self.platform_module, "card_detail_url", None)
        return pick(card, text, page_url) if pick is not None \
            else super().detail_url(card, text, page_url)

    def closed(self, reason):
        for what, count in ABORTED.items():
            self.crawler.stats.set_value(f"forecourt/playwright/aborted/{what}", count)
