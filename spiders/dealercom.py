"""Dealer.com (Cox Automotive) sites: inventory from the getInventory widget API.

The search page's inline script names the API call; the spider replays it page by page
(offset `inventoryParameters.start`) and extracts with `spiders.extract.dealercom`. No detail
pages are needed: the API answer carries every field. A start page without the call (a home
page) leads to the site's `/all-inventory/index.htm`; a page without it there either goes
down the rest of the fallback chain (spiders/chain.py): JSON-LD, data-vin, then the page
rendered in the headless browser and read again here (its rendered DOM may name the call).
"""

from __future__ import annotations

import json
from urllib.parse import urljoin, urlsplit

import scrapy

from crawler import pages
from crawler.spider import DealerSpider
from spiders import chain, totals
from spiders.extract.dealercom import (
    InventoryCall,
    declared_total,
    extract,
    from_api,
    inventory_call,
    next_start,
)

PLATFORM = "dealercom"
LISTING_PATH = "/all-inventory/index.htm"


class Spider(DealerSpider):
    name = "dealercom"
    rate_limit_backend = PLATFORM

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.totals = totals.watch(spider)  # totalCount against the entries read
        return spider

    async def start(self):
        # more search pages (e.g. new and used on separate widgets): setting `listing_urls`
        urls = [self.start_url, *self.dealer_settings.get("listing_urls", [])]
        for url in dict.fromkeys(urls):
            yield scrapy.Request(url, callback=self.parse_listing, errback=self.listing_failed,
                                 cb_kwargs={"tried_listing": False})

    def parse_listing(self, response, tried_listing: bool):
        text = response.text if hasattr(response, "text") else ""
        call = inventory_call(text, response.url)
        if call is not None:
            self.note_page(response, 0, listing=False)
            yield self.api_request(call, 0, response.url)
            return
        on_listing = urlsplit(response.url).path.endswith("-inventory/index.htm")
        if not tried_listing and not on_listing and response.status == 200 \
                and pages.classify(response.status, text, 0) == pages.OTHER \
                and not chain.fallback_items(text, response.url)[1]:
            yield scrapy.Request(urljoin(response.url, LISTING_PATH), callback=self.parse_listing,
                                 errback=self.listing_failed, cb_kwargs={"tried_listing": True})
            return
        yield from chain.fallback(self, response)

    def api_failed(self, failure):
        chain.api_failed(self, failure)

    def api_request(self, call: InventoryCall, start: int, referer: str) -> scrapy.Request:
        return scrapy.Request(
            call.url, method="POST", body=json.dumps(call.at(start)),
            headers={"Content-Type": "application/json", "Accept": "application/json",
                     "Referer": referer},
            callback=self.parse_api, errback=self.api_failed,
            cb_kwargs={"call": call, "start": start, "referer": referer})

    def parse_api(self, response, call: InventoryCall, start: int, referer: str):
        try:
            data = json.loads(response.body)
        except ValueError:
            data = None
        if not isinstance(data, dict) or "inventory" not in data:
            self.note_page(response, 0, listing=True)
            self.problems.append(f"getInventory answer at start={start} is not inventory JSON")
            self.incomplete = True
            return
        items = from_api(data, call.url)
        self.note_page(response, len(items), listing=True)
        search = self.totals.search(referer, f"Dealer.com getInventory of {referer}",
                                    "totalCount")
        self.totals.declare(search, declared_total(data))
        entries = data.get("inventory") or []
        self.totals.saw(search, [totals.entry_key(e, ("uuid",), f"start={start}#{i}")
                                 for i, e in enumerate(entries) if isinstance(e, dict)])
        yield from items
        nxt = next_start(data)
        if nxt is not None and nxt > start:
            yield self.api_request(call, nxt, referer)
        elif not entries and start and start < (search.declared or 0):
            search.gaps.append(f"its page at start={start} was empty")


__all__ = ["PLATFORM", "Spider", "extract"]
