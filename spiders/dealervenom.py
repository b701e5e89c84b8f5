"""DealerVenom sites: `/new-vehicles/` style results paged with `pg=N`, and
`/vehicle/<cond>/<year>/<make>/<model>/<VIN>/` detail pages. Extraction is
`spiders.extract.dealervenom`. From a home page: `/new-vehicles/`, `/used-vehicles/` and the
page's links to other `/...-vehicles/` results (`/certified-vehicles/`)."""

from __future__ import annotations

import re

from spiders.cards import CardSiteSpider
from spiders.extract.dealervenom import extract, next_page

PLATFORM = "dealervenom"


class Spider(CardSiteSpider):
    name = "dealervenom"
    rate_limit_backend = PLATFORM
    extract = staticmethod(extract)
    next_page = staticmethod(next_page)
    listing_paths = ("/new-vehicles/", "/used-vehicles/")
    results_path = re.compile(r"^/(?:[a-z0-9]+-)*vehicles/?$", re.I)
