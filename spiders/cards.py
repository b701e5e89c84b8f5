"""The crawl of platforms that list vehicles as HTML cards and detail each on its own page
(Dealer eProcess, DealerVenom, Team Velocity, and the javascript spider's rendered pages).

A result page whose HTML holds no cards goes down the rest of the fallback chain
(spiders/chain.py): JSON-LD, data-vin attributes, then the same page rendered in headless
Chromium and read again by `parse_listing` (platform cards first). The next result pages of a
rendered page are rendered directly; detail pages are always fetched over plain HTTP.

A dealer URL that is not a results page (the site's home page) leads to the platform's
results pages: its known listing paths (`listing_paths`) and the page's own links to results
pages (`results_path`), see `CardSiteSpider.inventory_urls`.

A next results page that shows only vehicles of the pages before it (page 2 answering with
page 1 once a search session expired) is not the page asked for: the run is incomplete.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import scrapy
from parsel import Selector

from crawler import browser, pages
from crawler.spider import DealerSpider
from spiders import chain


class CardSiteSpider(DealerSpider):
    """Crawl for platforms that list vehicles as HTML cards and detail each on its own page.

    A subclass sets `extract` (pure: page text and URL to VehicleItems, listing cards or the
    detail page's vehicle) and `next_page` (pure: the next results page or None), and may
    override `detail_url`. Listing pages come from the dealer URL plus the dealer's
    `listing_urls` setting. A card whose detail page cannot be read still yields the card's
    own fields, so a flaky detail page never makes a listed vehicle look sold. A result
    page without cards goes down the rest of the fallback chain (see the module).
    """

    extract = None
    next_page = None
    # the platform's results pages, from a site's root ("/new-vehicles/"), and the shape of
    # a results page's path (a home page's links to them are followed too)
    listing_paths: tuple[str, ...] = ()
    results_path: re.Pattern | None = None

    async def start(self):
        urls = [self.start_url, *self.dealer_settings.get("listing_urls", [])]
        for url in dict.fromkeys(urls):
            request = self.listing_request(url)
            if url == self.start_url:  # the dealer URL may be the site's home page
                request.cb_kwargs["first"] = True
            yield request

    def listing_request(self, url: str, render: bool = False) -> scrapy.Request:
        """A result page; rendered in the browser when `render` (a page it was found on
        needed the browser)."""
        if render:
            request = chain.javascript_request(
                url, wait_for=self.dealer_settings.get("wait_for"), dont_filter=False,
                callback=self.parse_listing, errback=self.listing_failed)
            if request is not None:
                return request
        return scrapy.Request(url, callback=self.parse_listing, errback=self.listing_failed)

    def extract_page(self, text: str, url: str) -> list:
        return type(self).extract(text, url)

    def next_page_url(self, text: str, url: str) -> str | None:
        return type(self).next_page(text, url)

    @staticmethod
    def page_text(response) -> str:
        if hasattr(response, "text"):
            return response.text
        return response.body.decode("utf-8", "replace")

    def detail_url(self, card, text: str, page_url: str) -> str | None:
        """Where a card's full record is; None to take the card as it is."""
        url = card.url
        return url if url and url.split("#")[0] != page_url.split("#")[0] else None

    def is_results_page(self, url: str) -> bool:
        return bool(self.results_path and self.results_path.search(urlsplit(url).path))

    def is_home_page(self, response, text: str, cards: list) -> bool:
        """Whether the dealer URL's page is not a results page but leads to them: a page
        with none of the platform's cards, or the site's root (whose featured cars are not
        the inventory), that is not a results page by its path nor a not-found, blocked or
        empty page."""
        return response.status == 200 and not self.is_results_page(response.url) \
            and (not cards or urlsplit(response.url).path in ("", "/")) \
            and pages.classify(response.status, text, 0) == pages.OTHER

    def inventory_urls(self, text: str, page_url: str) -> list[str]:
        """The results pages a page that is not one (a home page) leads to: the platform's
        known listing paths on its site, then the page's own links to results pages."""
        urls = [urljoin(page_url, path) for path in self.listing_paths]
        if self.results_path is not None:
            for href in Selector(text=text, type="html").css("a::attr(href)").getall():
                url = urljoin(page_url, href.strip()).split("#")[0]
                if self.same_site(url) and self.is_results_page(url):
                    urls.append(url)
        return list(dict.fromkeys(urls))

    def parse_listing(self, response, first: bool = False, earlier: frozenset = frozenset()):
        """A results page; `earlier` holds the vehicles (VINs, else URLs) of the pages
        before it in its run of next pages."""
        text = self.page_text(response)
        cards = self.extract_page(text, response.url)
        if first and self.is_home_page(response, text, cards):
            urls = self.inventory_urls(text, response.url)
            if urls:
                self.note_page(response, 0, listing=False)
                self.crawler.stats.inc_value("forecourt/home_page")
                for url in urls:
                    yield self.listing_request(url)
                return
        step = chain.STEP_PLATFORM
        if not cards:  # steps 2-3 of the chain
            step, cards = chain.fallback_items(text, response.url)
        shown = frozenset(_vehicle_key(card) for card in cards) - {None}
        kind = self.note_page(response, len(cards), listing=True, fresh=len(shown - earlier))
        if kind in (pages.BLOCKED, pages.NOT_FOUND):
            return
        if not cards:
            if kind != pages.EMPTY:  # step 4: the browser, once
                yield from chain.render_or_give_up(self, response)
            return
        if step != chain.STEP_PLATFORM:
            self.crawler.stats.inc_value(f"forecourt/fallback/{step}")
        if earlier and shown and shown <= earlier and self.redirected_from(response) is None:
            # (a redirected page showing nothing new is judged so by note_page already)
            self.problems.append(f"results page {response.url} shows only vehicles of the "
                                 "pages before it (the site answered with an earlier page); "
                                 "the vehicles of this page and the next are unknown")
            self.incomplete = True
        for card in cards:
            url = self.detail_url(card, text, response.url)
            if url and self.same_site(url):
                yield scrapy.Request(url, callback=self.parse_detail, errback=self.detail_lost,
                                     cb_kwargs={"card": card})
            else:
                yield card
        following = self.next_page_url(text, response.url)
        if following and following != response.url:
            request = self.listing_request(following, render=browser.was_rendered(response))
            request.cb_kwargs["earlier"] = earlier | shown
            yield request

    def parse_detail(self, response, card):
        """The detail page's record of the card's vehicle, completed from the card. A page
        about another vehicle (a sold car's page redirected elsewhere) is not this one."""
        items = self.extract_page(self.page_text(response), response.url)
        kind = self.note_page(response, len(items), listing=False)
        same = [i for i in items if _same_vin(i.vin, card.vin)] \
            if kind not in (pages.BLOCKED, pages.NOT_FOUND) else []
        if not same:
            self.crawler.stats.inc_value("forecourt/detail_fallback_to_card")
            yield card
            return
        for item in same[:1]:
            missing = {k: v for k, v in card if v is not None and getattr(item, k) is None
                       and k not in ("source", "raw")}
            yield item.model_copy(update=missing) if missing else item

    def detail_lost(self, failure):
        """Errback for detail pages: count it and keep the vehicle as its card showed it."""
        self.crawler.stats.inc_value("forecourt/detail_failures")
        request = getattr(failure, "request", None)
        self.logger.warning("detail page %s failed: %s; keeping the listing card",
                            request.url if request is not None else "?",
                            failure.getErrorMessage())
        card = request.cb_kwargs.get("card") if request is not None else None
        if card is not None:
            yield card


def _vehicle_key(card) -> str | None:
    """What tells a card's vehicle from another's: its VIN, else its detail page."""
    if card.vin:
        return str(card.vin).strip().upper()
    return str(card.url).split("#")[0] if card.url else None


def _same_vin(found, listed) -> bool:
    """Whether a detail page's VIN is the card's (a card without a VIN takes the page's)."""
    if not listed:
        return True
    return str(found or "").strip().upper() == str(listed).strip().upper()
