"""The generic spider: any dealer site that publishes schema.org vehicles.

Vehicle detail pages are found three ways: sitemaps named in robots.txt (and sitemap
indexes), links from listing pages (following pagination), and `ItemList`s in JSON-LD.
Extraction is the pure `extract` below: schema.org data (`spiders.extract.structured`), and
`data-vin` card attributes (`spiders.extract.attributes`) on pages without structured data.

Sitemaps are a discovery aid: one that cannot be fetched or read does not leave the run
incomplete when the listing pages lead to every vehicle the readable sitemaps list (it is
recorded as a `warning:` in the run's report). When the inventory depends on the sitemaps
(the listing pages lead to no vehicle, or the sitemaps list vehicle pages no listing page
links to) a lost sitemap leaves the run incomplete, so nothing is removed (`settle_sitemaps`,
when the crawl has nothing left to do).

A detail page that gives no vehicle is a sold car when it says so (not found, HTTP 404/410);
a 404 of a page only a sitemap lists (no listing page links it) is a sold car too, since
sitemaps lag the inventory by a day (`settle_detail_pages`). A detail page answering 200
with an error page ("Too Many Requests", "Service Unavailable") or cut short leaves the run
incomplete. Links are only guessed to be vehicle pages (VEHICLE_LINK), so any other page
without a vehicle counts only when it is surely a car's: a listing page links it, its URL
names a VIN and no page of the run showed that VIN. That holds for a page redirected
elsewhere too (the inventory, the home page, read already or not): while a listing page
still links the car, a redirect is no more a sale than a 404 is.

A listing page that gives no vehicles, links to no vehicle pages and still looks like a
results page (`worth_rendering`: its URL, or a "please enable JavaScript" shell) is rendered
in the headless browser and read again (step 4 of the chain, spiders/chain.py); the listing
pages a rendered page links to are rendered directly, its vehicle pages fetched plainly.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlparse

import scrapy
from scrapy import signals
from scrapy.utils.sitemap import Sitemap, sitemap_urls_from_robots
from twisted.python.failure import Failure
from w3lib.url import canonicalize_url

from crawler import browser, pages
from crawler.spider import PAGER_URL, DealerSpider, asked_url
from spiders import chain
from spiders.extract import attributes, structured
from spiders.extract.structured import item_list_urls

VEHICLE_LINK = re.compile(
    r"/(vehicle|vehicles|inventory|vdp|detail|details|used|new|cpo|certified)[/-].*"
    r"([A-HJ-NPR-Z0-9]{17}|\d{4,})|[?&](vin|stock)=|/vehicle-details?/",
    re.I,
)
URL_VIN = re.compile(r"(?<![A-Za-z0-9])([A-HJ-NPR-Za-hj-npr-z0-9]{17})(?![A-Za-z0-9])")
LISTING_LINK = re.compile(
    r"/(inventory|new-inventory|used-inventory|new-vehicles|used-vehicles|all-inventory|"
    r"search(new|used)?|cars-for-sale)(/|\.|$|\?)|[?&](page|pn|pg|p)=\d+", re.I,
)


def extract(html: str, page_url: str):
    """Steps 2-3 of the fallback chain (spiders/detect.py): JSON-LD or microdata, else
    vehicles in `data-vin` style card attributes."""
    return structured.extract(html, page_url) or attributes.extract(html, page_url)


def url_vin(url: str) -> str | None:
    """The VIN a page's URL names (17 letters and digits, both, without I, O or Q)."""
    for found in URL_VIN.finditer(urlparse(url)._replace(netloc="").geturl()):
        vin = found.group(1)
        if re.search(r"\d", vin) and re.search(r"[A-Za-z]", vin):
            return vin.upper()
    return None


def page_links(html: str, page_url: str) -> tuple[list[str], list[str]]:
    """(vehicle page URLs, listing page URLs) a page leads to on its own site: JSON-LD
    `ItemList` entries and vehicle-looking links, then results-looking links."""
    from parsel import Selector

    host = urlparse(page_url).hostname
    here = page_url.split("#")[0]
    vehicles: list[str] = []
    listings: list[str] = []
    for url in item_list_urls(html, page_url):
        url = urljoin(page_url, url)
        if urlparse(url).hostname == host:
            vehicles.append(url)
    for href in Selector(text=html, type="html").css("a::attr(href)").getall():
        url = urljoin(page_url, href.strip())
        if urlparse(url).hostname != host or url.split("#")[0] == here:
            continue
        if VEHICLE_LINK.search(url):
            vehicles.append(url)
        elif LISTING_LINK.search(url):
            listings.append(url)
    return list(dict.fromkeys(vehicles)), list(dict.fromkeys(listings))


def worth_rendering(html: str, page_url: str, vehicle_links: int) -> bool:
    """Whether a listing page that gave no vehicles may show them once its scripts run: it
    links to no vehicle pages, and it is a results page by its URL or a script shell (a
    home page that only links onwards is not rendered)."""
    return vehicle_links == 0 and (bool(LISTING_LINK.search(page_url))
                                   or chain.script_shell(html))


class GenericSpider(DealerSpider):
    name = "generic"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sitemaps_lost: list[str] = []  # "sitemap URL not read (why)"
        self.sitemap_vehicles: set[str] = set()  # vehicle pages the sitemaps list
        self.linked_vehicles: set[str] = set()  # ... and the listing pages lead to
        self.listing_vehicles = 0  # vehicles and vehicle links found on listing pages
        self.sitemaps_settled = False
        self.vins_seen: set[str] = set()  # VINs of the vehicles the run's pages gave
        self.vehicleless: dict[str, str] = {}  # detail page without a vehicle -> its URL's VIN
        self.sitemap_gone: dict[str, Failure] = {}  # sitemap-only detail pages: 404/410

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.settle, signal=signals.spider_idle)
        return spider

    async def start(self):
        robots = urljoin(self.start_url, "/robots.txt")
        yield scrapy.Request(robots, callback=self.parse_robots, errback=self.robots_failed,
                             dont_filter=True, meta={"dont_obey_robotstxt": True})
        yield scrapy.Request(self.start_url, callback=self.parse_page,
                             errback=self.listing_failed, cb_kwargs={"listing": True})

    def robots_failed(self, failure):
        self.logger.info("no robots.txt: %s", failure.getErrorMessage())

    def parse_robots(self, response):
        for url in sitemap_urls_from_robots(response.text, base_url=response.url):
            yield self.sitemap_request(url)

    def sitemap_request(self, url: str) -> scrapy.Request:
        return scrapy.Request(url, callback=self.parse_sitemap, errback=self.sitemap_failed)

    def sitemap_failed(self, failure):
        """Errback for sitemaps: judged with the rest once the crawl is done
        (`settle_sitemaps`), not as a listing page."""
        request = getattr(failure, "request", None)
        url = request.url if request is not None else "?"
        response = getattr(failure.value, "response", None)
        if self._ignored(failure):
            why = f"not fetched: {failure.getErrorMessage() or 'request refused'}"
        elif response is not None:
            why = f"HTTP {response.status}"
        else:
            why = failure.getErrorMessage()
        self.logger.warning("sitemap %s not read: %s", url, why)
        self.sitemaps_lost.append(f"sitemap {url} not read ({why})")

    def settle(self, *_args) -> None:
        """Once the crawl is idle (or closed): what only the whole crawl can tell."""
        self.settle_sitemaps()
        self.settle_detail_pages()

    def settle_sitemaps(self, *_args) -> None:
        """Once the crawl is idle: a lost sitemap is a warning when the listing pages led to
        vehicles and to every vehicle page the readable sitemaps list; otherwise the run
        depends on the sitemaps for its inventory and is incomplete."""
        if self.sitemaps_settled or not self.sitemaps_lost:
            return
        self.sitemaps_settled = True
        unlinked = self.sitemap_vehicles - self.linked_vehicles
        if self.listing_vehicles and not unlinked:
            self.problems.extend(f"warning: {lost}; the listing pages were read without it"
                                 for lost in self.sitemaps_lost)
            return
        why = (f"{len(unlinked)} vehicle page(s) the other sitemaps list are linked from no "
               "listing page" if self.listing_vehicles else
               "the listing pages lead to no vehicles")
        self.problems.extend(f"{lost}, and {why}: the inventory is not known in full"
                             for lost in self.sitemaps_lost)
        self.incomplete = True

    def settle_detail_pages(self) -> None:
        """Detail pages judged by what the listing pages link and the run saw: a 404 only a
        sitemap lists is a sold car, one a listing page links failed; a page of a car a
        listing page links, that showed no vehicle while no page showed its VIN, lost it."""
        gone, self.sitemap_gone = self.sitemap_gone, {}
        for url, failure in gone.items():
            if url in self.linked_vehicles:
                super().detail_failed(failure)
            else:
                self.crawler.stats.inc_value("forecourt/sitemap_only_gone")
                self.logger.info("detail page %s listed only in a sitemap answered %s: "
                                 "taken as sold", url, failure.getErrorMessage())
        vehicleless, self.vehicleless = self.vehicleless, {}
        for url, vin in vehicleless.items():
            if vin not in self.vins_seen and _canonical(url) in self.linked_vehicles:
                self.detail_problem(url, f"shows no vehicle, although a listing page links "
                                         f"it and no page of the run showed {vin}")

    def detail_failed(self, failure: Failure) -> None:
        """A 404/410 of a detail page a sitemap led to waits for the end of the crawl: a
        stale sitemap still lists cars sold today (`settle_detail_pages`)."""
        request = getattr(failure, "request", None)
        response = getattr(failure.value, "response", None)
        if request is not None and request.meta.get("from_sitemap") \
                and response is not None and response.status in (404, 410):
            self.sitemap_gone[_canonical(request.url)] = failure
            return
        super().detail_failed(failure)

    def closed(self, reason: str) -> None:
        self.settle()  # a crawl cut short is never idle; its report still says it
        super().closed(reason)

    def parse_sitemap(self, response):
        body = response.body
        if response.url.endswith(".gz") or body[:2] == b"\x1f\x8b":
            from scrapy.utils.gz import gunzip

            body = gunzip(body, max_size=self.settings.getint("DOWNLOAD_MAXSIZE"))
        try:
            sitemap = Sitemap(body)
        except Exception:  # lxml refuses broken XML
            self.sitemaps_lost.append(f"sitemap {response.url} not read (not sitemap XML)")
            return
        for entry in sitemap:
            loc = entry.get("loc", "").strip()
            if not loc or not self._same_site(loc):
                continue
            if sitemap.type == "sitemapindex":
                yield self.sitemap_request(loc)
            elif VEHICLE_LINK.search(loc):
                self.sitemap_vehicles.add(_canonical(loc))
                yield scrapy.Request(loc, callback=self.parse_page, errback=self.detail_failed,
                                     cb_kwargs={"listing": False}, meta={"from_sitemap": True})

    def parse_page(self, response, listing: bool, earlier: frozenset = frozenset()):
        """A listing or detail page; `earlier` holds the vehicles (canonical URLs) of the
        listing pages that led to a listing page."""
        if not hasattr(response, "text"):
            self.note_page(response, 0, listing)
            return
        items = extract(response.text, response.url)
        vehicle_urls: list[str] = []
        listing_urls: list[str] = []
        if listing:  # its vehicles count in judging a redirect that led to it (note_page)
            vehicle_urls, listing_urls = (
                [u for u in urls if self._same_site(u)]
                for urls in page_links(response.text, response.url))
        shown = frozenset(_canonical(u) for u in vehicle_urls) | \
            frozenset(_canonical(str(i.url)) for i in items if i.url)
        kind = self.note_page(response, len(items), listing, fresh=len(shown - earlier))
        if kind in (pages.BLOCKED, pages.NOT_FOUND):
            return
        self.vins_seen.update(str(i.vin).strip().upper() for i in items if i.vin)
        yield from items
        if not listing:
            if not items and kind == pages.OTHER:
                self.detail_without_vehicle(response)
            return
        self.listing_vehicles += len(items) + len(vehicle_urls)
        self.linked_vehicles.update(shown)
        asked = asked_url(response)
        if earlier and shown and shown <= earlier and PAGER_URL.search(asked) \
                and self.redirected_from(response) is None:  # else judged by note_page
            # page 2 answering with page 1 (a search session expired), as on card sites
            self.problems.append(f"results page {asked} shows only vehicles of the pages "
                                 "before it (the site answered with an earlier page); the "
                                 "vehicles of this page and the next are unknown")
            self.incomplete = True
        for url in vehicle_urls:
            yield scrapy.Request(url, callback=self.parse_page, errback=self.detail_failed,
                                 cb_kwargs={"listing": False})
        for url in listing_urls:
            yield chain.follow(self, response, url, callback=self.parse_page,
                               errback=self.listing_failed,
                               cb_kwargs={"listing": True, "earlier": earlier | shown})
        if not items and kind == pages.OTHER and not vehicle_urls and (
                browser.was_rendered(response)
                or worth_rendering(response.text, response.url, len(vehicle_urls))):
            yield from chain.render_or_give_up(self, response)  # step 4, once

    def detail_without_vehicle(self, response) -> None:
        """A detail page that answered without a vehicle and not as a sold car's: an error
        page or a page cut short leaves the run incomplete; any other page is judged at the
        end (`settle_detail_pages`), since links are only guessed to be vehicle pages."""
        text = response.text
        error = pages.error_page(text)
        if error:
            self.detail_problem(response.url, f"answered {response.status} with an error page "
                                              f"({error!r}), not its vehicle")
            return
        cut = pages.cut_short(text)
        if cut:
            self.detail_problem(response.url, f"was cut short ({cut}) before its vehicle")
            return
        asked = asked_url(response)
        vin = url_vin(asked)
        if vin:
            self.vehicleless[asked] = vin

    def request_dropped(self, request: scrapy.Request, spider=None) -> None:
        """A detail page redirected to a page already read (the inventory, the home page)
        is dropped by Scrapy's duplicate filter with no callback and no errback: judged at
        the end as a detail page without its vehicle (`settle_detail_pages`); off the site,
        Scrapy's offsite filter drops it (see DealerSpider.request_scheduled)."""
        super().request_dropped(request, spider)
        redirected = request.meta.get("redirect_urls") or []
        if spider in (None, self) and redirected:
            self.redirected_away(request, redirected[0])

    def redirected_away(self, request: scrapy.Request, asked: str) -> None:
        """A detail page redirected off the site or to a page already read: judged at the
        end as a detail page without its vehicle."""
        vin = url_vin(asked) if request.errback == self.detail_failed else None
        if vin:
            self.vehicleless[asked] = vin

    def _same_site(self, url: str) -> bool:
        return self.same_site(url)


def _canonical(url: str) -> str:
    return canonicalize_url(url).rstrip("/")


PLATFORM = "generic"
Spider = GenericSpider
# `extract` (defined above) is this platform's page extractor.
