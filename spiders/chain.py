"""The fallback chain at crawl time (the chain itself is described in spiders/detect.py).

A platform spider calls `fallback` on a listing page where its platform's own data was not
found (steps 2-4), or `render_or_give_up` where it ran steps 1-3 itself (step 4). Step 4
re-requests the page rendered in headless Chromium (`spiders.javascript.render_request`)
with the page's own callback, so the rendered DOM is read exactly as the plain page was:
the platform's extraction, then JSON-LD, then data-vin. A rendered page is never rendered
again; if it still shows no vehicles, the run records the page and is incomplete.
`follow` requests the pages a listing page leads to (its next results page, another
listing) the same way the page itself was fetched, so a site whose results need the browser
pays one plain request per listing URL, not one per page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import scrapy

from crawler import browser, pages, rendering
from crawler.models import VehicleItem
from spiders.extract import attributes, structured

STEP_PLATFORM, STEP_JSON_LD, STEP_DATA_VIN, STEP_JAVASCRIPT, STEP_LINKS = (
    "platform", "json-ld", "data-vin", "javascript", "links")
_SCRIPT_SHELL = re.compile(r"<noscript>[^<]*(enable|requires?|turn on) javascript|__NEXT_DATA__|"
                           r"<div id=[\"'](root|app|__next)[\"']>\s*</div>|"
                           r">\s*loading (vehicles|inventory)", re.I)


def script_shell(html: str) -> bool:
    """Whether a page says its content comes from scripts (a "please enable JavaScript"
    notice, an empty app root, a "loading vehicles" placeholder)."""
    return bool(_SCRIPT_SHELL.search(html[:1_500_000]))


def fallback_items(html: str, url: str) -> tuple[str, list[VehicleItem]]:
    """Chain steps 2-3 on one page: (step that found vehicles, vehicles)."""
    items = structured.extract(html, url)
    if items:
        return STEP_JSON_LD, items
    items = attributes.extract(html, url)
    if items:
        return STEP_DATA_VIN, items
    return STEP_LINKS, []


def _javascript_module():
    from spiders.registry import platforms  # late: platform modules import this module

    return platforms().get("javascript")


def javascript_request(url: str, **kwargs: Any) -> scrapy.Request | None:
    """A request rendering `url` in the headless browser within the current crawl, or None
    when the javascript platform is missing or offers no `render_request`."""
    make = getattr(_javascript_module(), "render_request", None)
    return make(url, **kwargs) if make is not None else None


def rendered_again(spider, response) -> scrapy.Request | None:
    """The request that fetched `response`, again, rendered in the browser (None if it was
    rendered already, or there is no browser step)."""
    if browser.was_rendered(response):
        return None
    original = response.request
    return javascript_request(response.url, wait_for=spider.dealer_settings.get("wait_for"),
                              callback=original.callback, errback=original.errback,
                              cb_kwargs=dict(original.cb_kwargs))


def render_or_give_up(spider, response) -> Iterator[scrapy.Request]:
    """Step 4 for a listing page (not empty, not found, not blocked) where steps 1-3 found
    no vehicles: render it, or record it as a problem that leaves the run incomplete."""
    request = rendered_again(spider, response)
    if request is not None:
        spider.crawler.stats.inc_value("forecourt/fallback/javascript")
        yield request
        return
    if browser.was_rendered(response):
        spider.problems.append(f"no vehicles found on {response.url}, even rendered in the "
                               f"headless browser, by the platform's extraction, JSON-LD or "
                               f"data-vin attributes"
                               + rendering.failed_requests_note(rendering.notes(response)))
    else:
        hint = (" (it may need the headless browser: platform javascript)"
                if _javascript_module() is not None else "")
        spider.problems.append(f"no vehicles found on {response.url} by the platform API, "
                               f"JSON-LD or data-vin attributes{hint}")
    spider.crawler.stats.inc_value("forecourt/fallback/nothing_found")
    spider.incomplete = True


def fallback(spider, response, listing: bool = True) -> Iterator[Any]:
    """Steps 2-4 for a page where a platform spider found none of its platform's data."""
    text = response.text if hasattr(response, "text") else ""
    step, items = fallback_items(text, response.url)
    kind = spider.note_page(response, len(items), listing)
    if kind in (pages.BLOCKED, pages.NOT_FOUND):
        return
    if items:
        spider.crawler.stats.inc_value(f"forecourt/fallback/{step}")
        yield from items
        return
    if kind != pages.EMPTY:
        yield from render_or_give_up(spider, response)


def follow(spider, response, url: str, **kwargs: Any) -> scrapy.Request:
    """A request for a listing page found on `response`: rendered if `response` was (its
    sibling pages need the browser too), else plain."""
    if browser.was_rendered(response):
        request = javascript_request(url, wait_for=spider.dealer_settings.get("wait_for"),
                                     dont_filter=False, **kwargs)
        if request is not None:
            return request
    return scrapy.Request(url, **kwargs)


def api_failed(spider, failure) -> None:
    """Errback for platform API requests: any HTTP error answer leaves the inventory unknown.

    (A refused API key answers 403: that is a block, and the run must say so.)
    """
    response = getattr(failure.value, "response", None)
    request = getattr(failure, "request", None)
    if response is None:
        spider.listing_failed(failure)
        return
    url = request.url if request is not None else response.url
    kind = "blocked" if response.status in (401, 403, 429) else \
        "not_found" if response.status in (404, 410) else "failed"
    spider.problems.append(f"{kind} listing page {url} (platform API, HTTP {response.status})")
    spider.incomplete = True
