"""Which platform a dealer site runs on, and which path forecourt takes to its inventory.

`detect(html, url)` is pure: it scores page signals (script and asset hosts, generator meta,
JavaScript globals, data attributes, API calls in inline scripts) for every known platform
and returns the winner, the signals it saw, and the path a crawl will take.

The fallback chain, per dealer and per page (first step that yields vehicles wins):

1. **platform**: the platform's own spider. For Dealer.com and DealerInspire this is their
   JSON API (getInventory; the hosted search index); for DealerOn the listing cards' data
   attributes; for the HTML platforms their cards and detail pages.
2. **json-ld**: schema.org vehicles in JSON-LD (or microdata) on the page.
3. **data-vin**: vehicles as `data-vin` style attributes on cards (spiders.extract.attributes).
4. **javascript**: a headless browser renders the page, then steps 2-3 run on the result.
   Only when a `javascript` platform is registered (spiders/javascript.py, scrapy-playwright).
   Detection chooses it for a dealer whose page is a script shell with no vehicles (so
   `dealers add` stores platform "javascript"). The browser is switched on only in that
   spider's own crawl, so inside another platform's crawl step 4 happens only if the
   javascript module offers `render_request(url, **request_kwargs)`; otherwise the run records
   that no step found vehicles and that the page may need the browser, and stays incomplete.

A platform spider that does not find its platform's data on a page (the config moved, the
site left the platform) runs steps 2-4 on that page via `fallback`, so a wrong or stale
platform never means an empty crawl. The generic spider runs steps 2-3 on every page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from crawler import pages
from crawler.models import VehicleItem
from spiders.extract import attributes, structured

# (platform, pattern, weight, what it means). Weights: 3 = decisive alone, 1 = a hint.
_SIGNALS: list[tuple[str, re.Pattern, int, str]] = [
    ("dealercom", re.compile(r"/api/widget/ws-inv-data/getInventory|ws-inv-data", re.I), 3,
     "inventory widget API ws-inv-data/getInventory"),
    ("dealercom", re.compile(r"\bDDC\.(WS|dataLayer|WidgetData)\b|window\.DDC\b"), 2,
     "JS global DDC"),
    ("dealercom", re.compile(r"//(static|pictures|images)\.dealer\.com/", re.I), 2,
     "asset host *.dealer.com"),
    ("dealercom", re.compile(r"<meta[^>]+generator[^>]+Dealer\.com", re.I), 2,
     "generator meta Dealer.com"),
    ("dealercom", re.compile(r"data-widget-name=", re.I), 1, "data-widget-name attributes"),
    ("dealerinspire", re.compile(r"\b(algoliaConfig|mvnAlgSettings)\s*=", re.I), 2,
     "JS search-index config (algoliaConfig)"),
    ("dealerinspire", re.compile(r"\binventoryLightningSettings\s*=", re.I), 2,
     "JS global inventoryLightningSettings"),
    ("dealerinspire", re.compile(r"dealerinspire\.com|dealer-inspire", re.I), 2,
     "DealerInspire host or plugin"),
    ("dealerinspire", re.compile(r"algolia(net|\.net|search)|-dsn\.algolia\.net", re.I), 1,
     "Algolia search host"),
    ("dealeron", re.compile(r"id=[\"']dealeron_tagging_data", re.I), 3,
     "dealeron_tagging_data script"),
    ("dealeron", re.compile(r"dealeron(\.js|cdn|\.com)", re.I), 2, "DealerOn script or host"),
    ("dealeron", re.compile(r"data-vehicle-information", re.I), 1,
     "data-vehicle-information cards"),
    ("dealeron", re.compile(r"/search(new|used|all)\.aspx", re.I), 1, "search*.aspx links"),
    ("dealereprocess", re.compile(r"dealereprocess\.|dep_require\.js", re.I), 3,
     "Dealer eProcess host or dep_require.js"),
    ("dealereprocess", re.compile(r"[\"'](https?://[^\"']*)?/dep/(js|css|images)/", re.I), 2,
     "asset path /dep/"),
    ("dealereprocess", re.compile(r"[?&](amp;)?s:pr=|/auto/(new|used|certified)-[\w-]+/\d+/",
                                  re.I), 1, "search ?s:pr= or /auto/<slug>/<id>/ links"),
    ("dealervenom", re.compile(r"dealervenom", re.I), 3,
     "DealerVenom host or theme"),
    ("dealervenom", re.compile(r"\bdv-(cta|srp|analytics)\b", re.I), 1, "dv-* classes"),
    ("teamvelocity", re.compile(r"teamvelocity|secureoffersites\.", re.I), 3,
     "Team Velocity host (secureoffersites)"),
    ("teamvelocity", re.compile(r"/viewdetails/(new|used|certified)/", re.I), 2,
     "/viewdetails/ links"),
    ("teamvelocity", re.compile(r"si-vehicle-box|\binventory_listing\b", re.I), 1,
     "si-vehicle-box cards"),
]
_JS_SHELL = re.compile(r"<noscript>[^<]*(enable|requires?|turn on) javascript|__NEXT_DATA__|"
                       r"<div id=[\"'](root|app|__next)[\"']>\s*</div>|"
                       r">\s*loading (vehicles|inventory)", re.I)
MIN_SCORE = 3

STEP_PLATFORM, STEP_JSON_LD, STEP_DATA_VIN, STEP_JAVASCRIPT, STEP_LINKS = (
    "platform", "json-ld", "data-vin", "javascript", "links")


class Detection(BaseModel):
    """What `forecourt detect` reports: platform (None when unknown), signals and path."""

    platform: str | None
    signals: list[str]
    spider: str
    path: str
    detail: str
    vehicles_on_page: int = 0
    page_kind: str = pages.OTHER  # crawler.pages classification of the page looked at


def platform_signals(html: str) -> dict[str, list[tuple[str, int]]]:
    """Every platform with the signals (meaning, weight) the page gives for it."""
    head = html[:1_500_000]
    seen: dict[str, list[tuple[str, int]]] = {}
    for platform, pattern, weight, meaning in _SIGNALS:
        if pattern.search(head):
            seen.setdefault(platform, []).append((meaning, weight))
    return seen


def detect_platform(html: str) -> tuple[str | None, list[str]]:
    """(platform, the signals seen); None when no platform scores MIN_SCORE or two tie."""
    seen = platform_signals(html)
    ranked = sorted(((sum(w for _, w in sigs), p) for p, sigs in seen.items()), reverse=True)
    if not ranked or ranked[0][0] < MIN_SCORE or (len(ranked) > 1
                                                   and ranked[1][0] == ranked[0][0]):
        return None, [f"{p}: {m} (+{w})" for p, sigs in seen.items() for m, w in sigs]
    return ranked[0][1], [f"{m} (+{w})" for m, w in seen[ranked[0][1]]]


def fallback_items(html: str, url: str) -> tuple[str, list[VehicleItem]]:
    """Chain steps 2-3 on one page: (step that found vehicles, vehicles)."""
    items = structured.extract(html, url)
    if items:
        return STEP_JSON_LD, items
    items = attributes.extract(html, url)
    if items:
        return STEP_DATA_VIN, items
    return STEP_LINKS, []


def _registered() -> dict[str, Any]:
    from spiders.registry import platforms  # late: platform modules import this module

    return platforms()


def _platform_path(platform: str, html: str, url: str) -> str:
    """How the platform spider will find inventory from this page."""
    from spiders.extract import dealercom, dealerinspire, dealeron

    if platform == "dealercom":
        call = dealercom.inventory_call(html, url)
        return (f"getInventory API {call.url} (siteId {call.body.get('siteId')})" if call else
                "getInventory API, from the site's /all-inventory/index.htm page")
    if platform == "dealerinspire":
        config = dealerinspire.index_config(html)
        return (f"search index {config.index} at {config.query_url}" if config else
                "search index named in the page config (not on this page)")
    if platform == "dealeron":
        return ("listing cards' data attributes, pages ?pt=N" if dealeron.tagging_data(html)
                else "listing cards' data attributes, from /searchall.aspx")
    return "platform spider (cards and detail pages)"


def detect(html: str, url: str) -> Detection:
    """Platform, signals and the chain step a crawl of this dealer will start with."""
    platform, signals = detect_platform(html)
    registered = _registered()
    kind = pages.classify(200, html, 0)
    if kind == pages.BLOCKED and platform is None:
        return Detection(platform=None, signals=signals, spider="generic", path=STEP_LINKS,
                         detail="the page is a bot challenge, not the dealer's site: detect "
                                "again from a page that is not blocked", page_kind=kind)
    if platform and platform in registered:
        module = registered[platform]
        items = module.extract(html, url) if hasattr(module, "extract") else []
        return Detection(platform=platform, signals=signals, spider=platform,
                         path=STEP_PLATFORM, detail=_platform_path(platform, html, url),
                         vehicles_on_page=len(items))
    step, items = fallback_items(html, url)
    note = f"; no spider for {platform}, so the generic spider crawls" if platform else ""
    if items:
        detail = {STEP_JSON_LD: "schema.org vehicles on the page",
                  STEP_DATA_VIN: "vehicle cards' data-vin attributes"}[step]
        return Detection(platform=platform, signals=signals, spider="generic", path=step,
                         detail=detail + note, vehicles_on_page=len(items))
    if "javascript" in registered and _JS_SHELL.search(html):
        return Detection(platform=platform, signals=signals + ["page is a JavaScript shell"],
                         spider="javascript", path=STEP_JAVASCRIPT,
                         detail="headless browser renders pages, then JSON-LD and data-vin"
                         + note)
    return Detection(platform=platform, signals=signals, spider="generic", path=STEP_LINKS,
                     detail="no vehicles on this page: sitemaps and links to vehicle pages, "
                            "each read as JSON-LD then data-vin" + note)


def stored_platform(detection: Detection) -> str | None:
    """The platform to store for a dealer (None means the generic spider)."""
    return None if detection.spider == "generic" else detection.spider


# --- the chain at crawl time -------------------------------------------------------------

def javascript_request(url: str, **kwargs: Any):
    """A request rendering `url` in the headless browser within the current crawl, or None
    when the javascript platform is missing or offers no `render_request`."""
    module = _registered().get("javascript")
    make = getattr(module, "render_request", None) if module is not None else None
    return make(url, **kwargs) if make is not None else None


def fallback(spider, response, listing: bool = True, rendered: bool = False) -> Iterator[Any]:
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
    request = None if rendered else javascript_request(
        response.url, callback=spider.parse_rendered, errback=spider.listing_failed,
        dont_filter=True)
    if request is not None:
        spider.crawler.stats.inc_value("forecourt/fallback/javascript")
        yield request
    elif kind != pages.EMPTY:
        hint = (" (it may need the headless browser: platform javascript)"
                if "javascript" in _registered() and not rendered else "")
        spider.problems.append(f"no vehicles found on {response.url} by the platform API, "
                               f"JSON-LD or data-vin attributes{hint}")
        spider.incomplete = True


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
