"""Dealer sites whose listing pages show vehicles only after their scripts run, and the
headless-browser step of every other platform's fallback chain.

The `javascript` spider renders each listing page in headless Chromium (scrapy-playwright,
crawler/browser.py) and extracts from the rendered DOM like any other page: schema.org data
first, else `data-*` vehicle cards (spiders.extract.attributes). `render_request` is the same
page setup for any crawl: a platform spider whose listing page shows no vehicles in its HTML
re-requests it through this (spiders/detect.py, step 4), and the page is read again by that
platform's own callback.

Resources are bounded so memory stays flat on long crawls (crawler/browser.py), and each
page is loaded, left to settle, scrolled and its "load more" clicked until it shows all its
vehicles, within a deadline (crawler/rendering.py, which also says when a rendered page may
not be trusted: a "0 vehicles" after its data requests failed, a page its scripts moved to a
consent or bot-check page, one still growing when reading stopped).

Per-dealer settings: `wait_for` (a CSS selector to wait for before the page settles; used by
the in-crawl fallback of other platforms too), `listing_urls` (more listing pages to start
from) and `extract_as` (a platform whose result pages need the browser: its extractor and
pager read the rendered page, and its detail pages or API, which do not need the browser, are
fetched over plain HTTP; the listing card stands in when one fails). A platform's own spider
does the same by itself when its result pages turn out to be script-rendered.
"""

from __future__ import annotations

from urllib.parse import urljoin

import scrapy
from parsel import Selector

from crawler import browser, rendering
from crawler.models import VehicleItem
from spiders import registry
from spiders.cards import CardSiteSpider
from spiders.extract import attributes, structured

PLATFORM = "javascript"


def extract(html: str, page_url: str) -> list[VehicleItem]:
    """Vehicles in a rendered page: schema.org data, else data-* vehicle cards."""
    return structured.extract(html, page_url) or attributes.extract(html, page_url)


def render_meta(wait_for: str | None = None) -> dict:
    """The meta of a rendered request: rendered in the browser, after `wait_for` (a CSS
    selector) appears when given. The page's steps (load, settle, scroll and "load more",
    a deadline) are set per download attempt by crawler/browser_handler.py."""
    meta: dict = {"playwright": True, browser.RENDERED: True}
    if wait_for:
        meta[rendering.WAIT_FOR] = wait_for
    return meta


def render_request(url: str, wait_for: str | None = None, **request_kwargs) -> scrapy.Request:
    """Step 4 of the fallback chain (spiders/detect.py), for any platform's crawl: `url`
    rendered in headless Chromium with this spider's page setup (see `render_meta`; resources
    blocked and pages bounded and closed by crawler/browser.py's settings). The other keyword
    arguments are scrapy.Request's (callback, errback, cb_kwargs, meta...); the request is
    not filtered as a duplicate unless `dont_filter=False` is given, since the same URL was
    usually fetched plainly first."""
    meta = {**(request_kwargs.pop("meta", None) or {}), **render_meta(wait_for)}
    request_kwargs.setdefault("dont_filter", True)
    return scrapy.Request(url, meta=meta, **request_kwargs)


class Spider(CardSiteSpider):
    """Listing pages rendered in Chromium; with `extract_as`, detail pages over plain HTTP."""

    name = "javascript"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.platform = self.dealer_settings.get("extract_as")
        self.platform_module = registry.platforms().get(self.platform) if self.platform else None
        if self.platform and self.platform_module is None:
            raise ValueError(f"extract_as names no platform: {self.platform!r}")

    def listing_request(self, url: str, render: bool = True) -> scrapy.Request:
        return render_request(url, wait_for=self.dealer_settings.get("wait_for"),
                              callback=self.parse_listing, errback=self.listing_failed,
                              dont_filter=False)

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
        href = Selector(text=text, type="html").css("a[rel~='next']::attr(href)").get()
        return urljoin(url, href) if href else None

    def detail_url(self, card, text: str, page_url: str) -> str | None:
        """Detail pages (fetched without the browser) only for a platform's cards."""
        if self.platform_module is None:
            return None
        pick = getattr(self.platform_module, "card_detail_url", None)
        return pick(card, text, page_url) if pick is not None \
            else super().detail_url(card, text, page_url)
