"""The base of every dealer spider: page classification, problems, completeness.

A spider only extracts. It yields VehicleItems; it records what kind of page each response
was, and it marks the run incomplete when a listing page could not be read, so the gate never
mistakes a broken crawl for a dealer that sold everything.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import scrapy
from scrapy.exceptions import IgnoreRequest
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from crawler import pages


class DealerSpider(scrapy.Spider):
    """Common state and helpers; subclasses implement `start` and their parse callbacks."""

    name = "dealer"

    def __init__(self, url: str | None = None, dealer_settings: dict[str, Any] | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if not url:
            raise ValueError(f"{self.name} spider needs url=<dealer website>")
        self.start_url = url
        self.dealer_settings = dealer_settings or {}
        host = urlparse(url).hostname or ""
        self.allowed_domains = [host] if host else []
        self.problems: list[str] = []
        self.incomplete = False
        self.page_kinds: dict[str, int] = {}

    def note_page(self, response: scrapy.http.Response, vehicles_found: int,
                  listing: bool) -> str:
        """Classify a response, count it, and record it as a problem when it matters."""
        body = response.text if hasattr(response, "text") else ""
        kind = pages.classify(response.status, body, vehicles_found)
        self.page_kinds[kind] = self.page_kinds.get(kind, 0) + 1
        self.crawler.stats.inc_value(f"forecourt/pages/{kind}")
        if listing and kind in (pages.BLOCKED, pages.NOT_FOUND):
            self.problems.append(f"{kind} listing page {response.url}")
        elif kind == pages.BLOCKED:
            self.problems.append(f"blocked page {response.url}")
        return kind

    def listing_failed(self, failure: Failure) -> None:
        """Errback for listing pages: without them the inventory is not known in full."""
        if self._ignored(failure):
            return
        request = getattr(failure, "request", None)
        url = request.url if request is not None else "?"
        response = getattr(failure.value, "response", None)
        if response is not None and response.status in (401, 403, 429):
            self.problems.append(f"blocked listing page {url} (HTTP {response.status})")
        elif response is not None and response.status in (404, 410):
            self.problems.append(f"not_found listing page {url} (HTTP {response.status})")
        else:
            self.problems.append(f"listing page {url} failed: {failure.getErrorMessage()}")
        self.incomplete = True

    def _ignored(self, failure: Failure) -> bool:
        """Requests we chose not to make (robots.txt, offsite) are not failures of the site.
        An HTTP error answer (HttpError subclasses IgnoreRequest) is one."""
        if failure.check(IgnoreRequest) and not failure.check(HttpError):
            self.crawler.stats.inc_value("forecourt/ignored_requests")
            return True
        return False

    def detail_failed(self, failure: Failure) -> None:
        """Errback for detail pages: the run can still be judged, but it is not complete."""
        if self._ignored(failure):
            return
        request = getattr(failure, "request", None)
        self.crawler.stats.inc_value("forecourt/detail_failures")
        self.logger.warning("detail page %s failed: %s",
                            request.url if request is not None else "?",
                            failure.getErrorMessage())
        self.incomplete = True


class CardSiteSpider(DealerSpider):
    """Crawl for platforms that list vehicles as HTML cards and detail each on its own page.

    A subclass sets `extract` (pure: page text and URL to VehicleItems, listing cards or the
    detail page's vehicle) and `next_page` (pure: the next results page or None), and may
    override `detail_url`. Listing pages come from the dealer URL plus the dealer's
    `listing_urls` setting. A card whose detail page cannot be read still yields the card's
    own fields, so a flaky detail page never makes a listed vehicle look sold.
    """

    extract = None
    next_page = None

    async def start(self):
        urls = [self.start_url, *self.dealer_settings.get("listing_urls", [])]
        for url in dict.fromkeys(urls):
            yield self.listing_request(url)

    def listing_request(self, url: str) -> scrapy.Request:
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

    def parse_listing(self, response):
        text = self.page_text(response)
        cards = self.extract_page(text, response.url)
        kind = self.note_page(response, len(cards), listing=True)
        if kind in (pages.BLOCKED, pages.NOT_FOUND):
            return
        for card in cards:
            url = self.detail_url(card, text, response.url)
            if url and urlparse(url).hostname in self.allowed_domains:
                yield scrapy.Request(url, callback=self.parse_detail, errback=self.detail_lost,
                                     cb_kwargs={"card": card})
            else:
                yield card
        following = self.next_page_url(text, response.url)
        if following and following != response.url:
            yield self.listing_request(following)

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


def _same_vin(found, listed) -> bool:
    """Whether a detail page's VIN is the card's (a card without a VIN takes the page's)."""
    if not listed:
        return True
    return str(found or "").strip().upper() == str(listed).strip().upper()
