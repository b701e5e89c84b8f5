"""DealerOn sites: vehicles from the listing pages' card attributes and JSON-LD ItemList.

The first result page (the dealer URL, or `/searchall.aspx` when that is a home page) gives
the total (`dealeron_tagging_data.itemCount`); the other pages are `?pt=2..N` with the same
search (the page size is what page 1 shows unless the URL says `pn`); fewer vehicles than
itemCount, or an itemCount changing between pages, leaves the run incomplete
(spiders/totals.py). Cards carry every field, so no detail pages are fetched. A page with
neither cards nor tagging data goes down the rest of the fallback chain (spiders/chain.py):
JSON-LD, data-vin, then the page rendered in the headless browser and read again here; the
other result pages of a rendered page are rendered too.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import scrapy

from crawler import pages
from crawler.spider import DealerSpider
from spiders import chain, totals
from spiders.extract.dealeron import (
    declared_total,
    extract,
    listed,
    page_urls,
    search_key,
    tagging_data,
)

PLATFORM = "dealeron"
LISTING_PATH = "/searchall.aspx"
SEARCH_PAGE = re.compile(r"/search(new|used|all|cpo)?\.aspx$", re.I)


class Spider(DealerSpider):
    name = "dealeron"
    rate_limit_backend = PLATFORM

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.totals = totals.watch(spider)  # itemCount against the cards read
        return spider

    async def start(self):
        # more searches (e.g. searchnew.aspx and searchused.aspx): setting `listing_urls`
        urls = [self.start_url, *self.dealer_settings.get("listing_urls", [])]
        for url in dict.fromkeys(urls):
            yield scrapy.Request(url, callback=self.parse_listing, errback=self.listing_failed,
                                 cb_kwargs={"first": True})

    def parse_listing(self, response, first: bool, tried_listing: bool = False):
        text = response.text if hasattr(response, "text") else ""
        items = extract(text, response.url)
        is_listing = bool(items) or bool(tagging_data(text))
        if not is_listing:
            on_search = bool(SEARCH_PAGE.search(urlsplit(response.url).path))
            if first and not tried_listing and not on_search and response.status == 200 \
                    and pages.classify(response.status, text, 0) == pages.OTHER \
                    and not chain.fallback_items(text, response.url)[1]:
                yield scrapy.Request(urljoin(response.url, LISTING_PATH),
                                     callback=self.parse_listing, errback=self.listing_failed,
                                     cb_kwargs={"first": True, "tried_listing": True})
                return
            yield from chain.fallback(self, response)
            return
        kind = self.note_page(response, len(items), listing=True)
        if kind in (pages.BLOCKED, pages.NOT_FOUND):
            return
        if not items and kind == pages.OTHER:  # tagging data, but no cards in the HTML
            yield from chain.render_or_give_up(self, response)
            return
        search = self.totals.search(search_key(response.url),
                                    f"DealerOn search {search_key(response.url)}", "itemCount")
        self.totals.declare(search, declared_total(text))
        self.totals.saw(search, listed(text, items))
        yield from items
        for url in page_urls(text, response.url):  # all from page 1, or rel=next page by page
            yield chain.follow(self, response, url, callback=self.parse_listing,
                               errback=self.listing_failed, cb_kwargs={"first": False})



__all__ = ["PLATFORM", "Spider", "extract"]
