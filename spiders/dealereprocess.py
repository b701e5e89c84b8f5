"""Dealer eProcess sites: search-results cards, paged with `p=N`, and `/auto/.../<id>/`
detail pages. Extraction is `spiders.extract.dealereprocess`."""

from __future__ import annotations

from spiders.cards import CardSiteSpider
from spiders.extract.dealereprocess import extract, next_page

PLATFORM = "dealereprocess"


class Spider(CardSiteSpider):
    name = "dealereprocess"
    rate_limit_backend = PLATFORM
    extract = staticmethod(extract)
    next_page = staticmethod(next_page)
