"""DealerInspire sites: inventory from the hosted search index named in the page config.

The spider reads the index's app id, search key, index name, page size and refinements from
the page's JavaScript (`spiders.extract.dealerinspire.index_config`), then asks the index
page by page (`page` from 0 to `nbPages`); a run that read fewer hits than `nbHits`, or
met an empty page before `nbPages`, is incomplete (spiders/totals.py). Paging reaches only
the first 1,000 hits of a search (Algolia's `paginationLimitedTo`): a dealer with more is
read in parts, one search per value of a facet such as stock type or model, each part
declared and checked on its own and all of them together against the whole
(spiders/facet_split.py). The index host is the platform's (Algolia) unless the config
names one. A page without the config goes down the rest of the fallback chain
(spiders/chain.py), the page rendered in the headless browser included.
"""

from __future__ import annotations

import json

import scrapy

from crawler.spider import DealerSpider
from spiders import chain, facet_split, totals
from spiders.extract.dealerinspire import (
    IndexConfig,
    Narrowing,
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
        spider.hits_read = set()  # every hit's key, once, across the parts of a split search
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

    def index_request(self, config: IndexConfig, page: int,
                      narrowed: Narrowing = ()) -> scrapy.Request:
        return scrapy.Request(
            config.query_url, method="POST", body=config.body(page, narrowed),
            headers=config.headers(), callback=self.parse_index, errback=self.api_failed,
            cb_kwargs={"config": config, "page": page, "narrowed": narrowed},
            meta={"allow_offsite": True})  # the index is on the platform's search host

    def facets_request(self, config: IndexConfig, narrowed: Narrowing,
                       reachable: int) -> scrapy.Request:
        attributes = tuple(a for a in facet_split.FACETS if a not in dict(narrowed))
        return scrapy.Request(
            config.query_url, method="POST", body=config.facets_body(narrowed, attributes),
            headers=config.headers(), callback=self.parse_facets, errback=self.api_failed,
            cb_kwargs={"config": config, "narrowed": narrowed, "attributes": attributes,
                       "reachable": reachable},
            meta={"allow_offsite": True})

    def search_of(self, config: IndexConfig, narrowed: Narrowing) -> totals.Search:
        """The declared search of the index (narrowed: a part of the search one shorter)."""
        name = f"DealerInspire search index {config.index}"
        if narrowed:
            name += " narrowed to " + ", ".join(f"{a}:{v}" for a, v in narrowed)
        parent = self.search_of(config, narrowed[:-1]) if narrowed else None
        return self.totals.search(config.query_url + "?" + config.body(0, narrowed), name,
                                  "nbHits", parent)

    def parse_index(self, response, config: IndexConfig, page: int, narrowed: Narrowing = ()):
        try:
            data = json.loads(response.body)
        except ValueError:
            data = None
        if not isinstance(data, dict) or "hits" not in data:
            self.note_page(response, 0, listing=True)
            self.problems.append(f"search index page {page} is not a hits answer")
            self.incomplete = True
            return
        search = self.search_of(config, narrowed)
        self.totals.declare(search, declared_total(data))
        hits = [h for h in data.get("hits") or [] if isinstance(h, dict)]
        keys = [totals.entry_key(h, ("objectID",), f"{narrowed}page={page}#{i}")
                for i, h in enumerate(hits)]
        self.totals.saw(search, keys)
        fresh = [h for h, key in zip(hits, keys, strict=True) if key not in self.hits_read]
        self.hits_read.update(keys)  # a hit read by another part of the search is read once
        items = from_api({**data, "hits": fresh}, config.source(narrowed), self.start_url)
        self.note_page(response, len(hits), listing=True)
        yield from items
        reachable = facet_split.beyond_paging(data, config.hits_per_page) if page == 0 else None
        if reachable is not None:
            yield self.facets_request(config, narrowed, reachable)
            return
        nxt = next_page(data)
        if nxt is not None and nxt > page:
            yield self.index_request(config, nxt, narrowed)
        elif stopped_early(data):
            search.gaps.append(stopped_early(data))

    def parse_facets(self, response, config: IndexConfig, narrowed: Narrowing,
                     attributes: tuple[str, ...], reachable: int):
        """Split a search that paging cannot read whole into one search per facet value
        (spiders/facet_split.py); without a split, page it as far as paging reaches."""
        self.note_page(response, 0, listing=False)
        search = self.search_of(config, narrowed)
        try:
            data = json.loads(response.body)
        except ValueError:
            data = None
        total = declared_total(data) if isinstance(data, dict) else None
        if total is None:
            self.problems.append(f"{search.name}: its facet counts are not a search answer")
            self.incomplete = True
            split = facet_split.Split(None)
        else:
            self.totals.declare(search, total)
            split = facet_split.choose(facet_split.facet_counts(data), total, attributes)
        if split.problem:
            self.problems.append(
                f"{search.name} declares {total:,} vehicles (nbHits) but paging reaches only "
                f"{reachable:,}, and {split.problem}")
            self.incomplete = True
        if split.attribute is None:
            yield self.index_request(config, 1, narrowed)  # read as far as paging reaches
            return
        for value in split.counts:
            yield self.index_request(config, 0, (*narrowed, (split.attribute, value)))


__all__ = ["PLATFORM", "Spider", "extract"]
