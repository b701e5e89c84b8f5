"""Dealer eProcess sites: search-results cards, paged with `p=N`, and `/auto/.../<id>/`
detail pages. Extraction is `spiders.extract.dealereprocess`.

DEP results paths carry the dealer's own town (`/search/new-toyota-cedar-hollow-or/?tp=new`),
so there is no fixed results path: from a home page the spider follows the page's links to
`/search/<slug>/?tp=...` results, only the `tp=all` ones when it links to all inventory.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from spiders.cards import CardSiteSpider
from spiders.extract.dealereprocess import extract, next_page

PLATFORM = "dealereprocess"


def _kind(url: str) -> str:
    return (parse_qs(urlsplit(url).query).get("tp") or [""])[0].lower()


class Spider(CardSiteSpider):
    name = "dealereprocess"
    rate_limit_backend = PLATFORM
    extract = staticmethod(extract)
    next_page = staticmethod(next_page)
    results_path = re.compile(r"^/search/[^/]+/?$", re.I)

    def inventory_urls(self, text: str, page_url: str) -> list[str]:
        """The home page's links to results (`tp=new`, `tp=used`...), or only its
        `tp=all` ones when it has any."""
        urls = [u for u in super().inventory_urls(text, page_url) if _kind(u)]
        everything = [u for u in urls if _kind(u) == "all"]
        return everything or urls
