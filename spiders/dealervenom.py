"""DealerVenom sites: `/new-vehicles/` style results paged with `pg=N`, and
`/vehicle/<cond>/<year>/<make>/<model>/<VIN>/` detail pages. Extraction is
`spiders.extract.dealervenom`."""

from __future__ import annotations

from spiders.cards import CardSiteSpider
from spiders.extract.dealervenom import extract, next_page

PLATFORM = "dealervenom"


class Spider(CardSiteSpider):
    name = "dealervenom"
    rate_limit_backend = PLATFORM
    extract = staticmethod(extract)
    next_page = staticmethod(next_page)
