"""DealerInspire sites: inventory from the hosted search index named in the page config.

The spider reads the index's app id, search key, index name, page size and refinements from
the page's JavaScript (`spiders.extract.dealerinspire.index_config`), then asks the index
page by page (`page` from 0 to `nbPages`); a run that read fewer hits than `nbHits`, or
met an empty page before `nbPages`, is incomplete (spiders/totals.py). The index host is the
platform's (Algolia) unless the config names one. A page without the config goes down the
rest of the fallback chain (spiders/chain.py), the page rendered in the headless browser
included.
"""

from __future__ import annotations

import json

import scrapy

from crawler.spider import DealerSpider
from spiders import chain, totals
from spiders.extract.dealerinspire import (
    IndexConfig,
    declared_total,
    extract,
    from_api,
    index_config,
    next_page,
    stopped_early,
)

PLATFORM = "dealerinspire"


class Spider(DealerSpider):
    name = "dealerinspire"
    rate_limit_backend = PLATFORM

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.totals = totals.watch(spider)  # nbHits against the hits read
        return spider

    async def start(self):
        yield scrapy.Request(self.start_url, callback=self.parse_page,
                             errback=self.listing_failed)

    def parse_page(self, response):
        text = response.text if hasattr(response, "text") else ""
        config = index_config(text)
        if config is None:
            yield from chain.fallback(self, response)
            return
        self.note_page(response, 0, listing=False)
        yield self.index_request(config, 0)

    def api_failed(self, failure):
        chain.api_failed(self, failure)

    def index_request(self, config: IndexConfig, page: int) -> scrapy.Request:
        return scrapy.Request(
            config.query_url, method="POST", body=config.body(page), headers=config.headers(),
            callback=self.parse_index, errback=self.api_failed,
            cb_kwargs={"config": config, "page": page},
            meta={"allow_offsite": True})  # the index is on the platform's search host

    def parse_index(self, response, config: IndexConfig, page: int):
        try:
            data = json.loads(response.body)
        except ValueError:
            data = None
        if not isinstance(data, dict) or "hits" not in data:
            self.note_page(response, 0, listing=True)
            self.problems.append(f"search index page {page} is not a hits answer")
            self.incomplete = True
            return
        items = from_api(data, config.query_url, self.start_url)
        self.note_page(response, len(items), listing=True)
        search = self.totals.search(config.query_url + "?" + config.body(0),
                                    f"DealerInspire search index {config.index}", "nbHits")
        self.totals.declare(search, declared_total(data))
        self.totals.saw(search, [totals.entry_key(h, ("objectID",), f"page={page}#{i}")
                                 for i, h in enumerate(data.get("hits") or [])
                                 if isinstance(h, dict)])
        yield from items
        nxt = next_page(data)
        if nxt is not None and nxt > page:
            yield self.index_request(config, nxt)
        elif stopped_early(data):
            search.gaps.append(stopped_early(data))


__all__ = ["PLATFORM", "Spider", "extract"]
