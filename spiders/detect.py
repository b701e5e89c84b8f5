"""Which platform a dealer site runs on, and which path forecourt takes to its inventory.

`detect(html, url)` is pure: it scores page signals (script and asset hosts, generator meta,
JavaScript globals, data attributes, API calls in inline scripts) for every known platform
and returns the winner, the signals it saw, the path a crawl will take, and whether that
crawl renders pages in the headless browser.

The fallback chain, per dealer and per listing page (first step that yields vehicles wins):

1. **platform**: the platform's own spider. For Dealer.com and DealerInspire this is their
   JSON API (getInventory; the hosted search index); for DealerOn the listing cards' data
   attributes; for the HTML platforms their cards and detail pages.
2. **json-ld**: schema.org vehicles in JSON-LD (or microdata) on the page.
3. **data-vin**: vehicles as `data-vin` style attributes on cards (spiders.extract.attributes).
4. **javascript**: the page again, rendered in headless Chromium
   (`spiders.javascript.render_request`), and read by the same callback: the platform's own
   extraction, then steps 2-3, on the rendered DOM.

Step 4 runs inside any platform's crawl (spiders/chain.py): a listing page whose HTML gives
no vehicles and is not an empty-results, not-found or challenge page is rendered once, the
result pages it leads to are requested rendered directly, and detail pages and APIs stay
plain HTTP. Every crawl can render (crawler/browser_handler.py), but the browser starts only
for the first rendered page, so a crawl that never needs it never launches Chromium. Only if
the rendered page shows no vehicles either does the run record the page and stay
incomplete; the pages that were rendered are counted in the run's stats and listed in its
report (`rendered_pages`).

Detection therefore names the platform even when its result pages are script-rendered (a
DealerVenom results page with the platform's signals and no vehicle cards in its HTML stays
`dealervenom`, and `forecourt detect` says its pages will be rendered), so the dealer keeps
its platform's extraction, pager and detail pages. It chooses the `javascript` spider, which
renders every listing page from the start, only for a script shell with no platform signals.
A platform spider that does not find its platform's data on a page (the config moved, the
site left the platform) runs steps 2-4 on that page, so a wrong or stale platform never
means an empty crawl. The generic spider runs steps 2-3 on every page and step 4 on listing
pages that show no vehicles and link to none (see spiders/generic.py).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from crawler import pages
from spiders import chain

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
MIN_SCORE = 3


class Detection(BaseModel):
    """What `forecourt detect` reports: platform (None when unknown), signals and path."""

    platform: str | None
    signals: list[str]
    spider: str
    path: str
    detail: str
    vehicles_on_page: int = 0
    page_kind: str = pages.OTHER  # crawler.pages classification of the page looked at
    renders: bool = False  # the crawl renders this page (and its result pages) in Chromium


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


def _renders_here(platform: str, html: str, url: str) -> bool:
    """Whether the platform's spider, finding no vehicles on this page by steps 1-3, renders
    it (rather than first moving on to the platform's own results page)."""
    from spiders.dealeron import SEARCH_PAGE
    from spiders.extract import dealercom, dealerinspire, dealeron

    path = urlsplit(url).path
    if platform == "dealercom":  # a home page leads to /all-inventory/index.htm first
        return dealercom.inventory_call(html, url) is None and \
            path.endswith("-inventory/index.htm")
    if platform == "dealerinspire":
        return dealerinspire.index_config(html) is None
    if platform == "dealeron":  # a home page leads to /searchall.aspx first
        return bool(SEARCH_PAGE.search(path)) or bool(dealeron.tagging_data(html))
    return True  # the HTML-card platforms read the page they are given


RENDERED_DETAIL = ("no vehicles in this page's HTML (and it is not an empty-results, "
                   "not-found or challenge page): the {spider} spider re-requests it rendered in "
                   "headless Chromium and reads the rendered page as {reads}; the result pages "
                   "it leads to are rendered directly{details}")


def _home_page_hint(url: str) -> str:
    if urlsplit(url).path not in ("", "/"):
        return ""
    return ("; this is the site's home page: if it lists no vehicles, crawl from the results "
            "page instead (its URL, or the dealer's settings.listing_urls)")


def detect(html: str, url: str) -> Detection:
    """Platform, signals, the chain step a crawl of this dealer will start with, and whether
    it renders pages in the headless browser."""
    platform, signals = detect_platform(html)
    registered = _registered()
    kind = pages.classify(200, html, 0)
    if kind == pages.BLOCKED and platform is None:
        return Detection(platform=None, signals=signals, spider="generic", path=chain.STEP_LINKS,
                         detail="the page is a bot challenge, not the dealer's site: detect "
                                "again from a page that is not blocked", page_kind=kind)
    step, items = chain.fallback_items(html, url)
    if platform and platform in registered:
        module = registered[platform]
        own = module.extract(html, url) if hasattr(module, "extract") else []
        found = own or items
        page_kind = pages.classify(200, html, len(found))
        if not found and page_kind == pages.OTHER and "javascript" in registered \
                and _renders_here(platform, html, url):
            from spiders.cards import CardSiteSpider

            details = "; detail pages and APIs over plain HTTP" \
                if issubclass(module.Spider, CardSiteSpider) else ""
            return Detection(
                platform=platform, signals=signals + ["no vehicles in the page's HTML"],
                spider=platform, path=chain.STEP_JAVASCRIPT, page_kind=page_kind, renders=True,
                detail=RENDERED_DETAIL.format(
                    spider=platform, details=details,
                    reads=f"{platform} cards, then JSON-LD, then data-vin attributes")
                + _home_page_hint(url))
        return Detection(platform=platform, signals=signals, spider=platform,
                         path=chain.STEP_PLATFORM, detail=_platform_path(platform, html, url),
                         vehicles_on_page=len(found), page_kind=page_kind)
    note = f"; no spider for {platform}, so the generic spider crawls" if platform else ""
    page_kind = pages.classify(200, html, len(items))
    if items:
        detail = {chain.STEP_JSON_LD: "schema.org vehicles on the page",
                  chain.STEP_DATA_VIN: "vehicle cards' data-vin attributes"}[step]
        return Detection(platform=platform, signals=signals, spider="generic", path=step,
                         detail=detail + note, vehicles_on_page=len(items),
                         page_kind=page_kind)
    if "javascript" in registered and chain.script_shell(html):
        return Detection(platform=platform, signals=signals + ["page is a JavaScript shell"],
                         spider="javascript", path=chain.STEP_JAVASCRIPT, renders=True,
                         page_kind=page_kind,
                         detail="headless browser renders every listing page, then JSON-LD "
                                "and data-vin" + note)
    from spiders.generic import page_links, worth_rendering

    vehicle_urls, _ = page_links(html, url)
    if "javascript" in registered and page_kind == pages.OTHER \
            and worth_rendering(html, url, len(vehicle_urls)):
        return Detection(platform=platform, signals=signals + ["no vehicles or vehicle links "
                                                               "on a results page"],
                         spider="generic", path=chain.STEP_JAVASCRIPT, renders=True,
                         page_kind=page_kind,
                         detail=RENDERED_DETAIL.format(
                             spider="generic", details="; vehicle pages over plain HTTP",
                             reads="JSON-LD, then data-vin attributes") + note)
    return Detection(platform=platform, signals=signals, spider="generic", path=chain.STEP_LINKS,
                     page_kind=page_kind,
                     detail="no vehicles on this page: sitemaps and links to vehicle pages, "
                            "each read as JSON-LD then data-vin" + note)


def stored_platform(detection: Detection) -> str | None:
    """The platform to store for a dealer (None means the generic spider)."""
    return None if detection.spider == "generic" else detection.spider
