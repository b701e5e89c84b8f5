"""Team Velocity sites: `/inventory/new` style results paged with `page=N`, each card's full
record read from the site's `/api/Inventory/vehicle` JSON (the card stands in when the API
fails). Extraction is `spiders.extract.teamvelocity`. From a home page: `/inventory/new`,
`/inventory/used` and the page's links to other `/inventory/<kind>` results."""

from __future__ import annotations

import re

from spiders.cards import CardSiteSpider
from spiders.extract.teamvelocity import account_id, api_url, extract, next_page

PLATFORM = "teamvelocity"


def card_detail_url(card, text: str, page_url: str) -> str | None:
    """Where a card's full record is: the vehicle API, with the page's account id."""
    account = account_id(text)
    if card.vin and account:
        return api_url(page_url, card.vin, account)
    return None


class Spider(CardSiteSpider):
    name = "teamvelocity"
    rate_limit_backend = PLATFORM
    extract = staticmethod(extract)
    next_page = staticmethod(next_page)
    listing_paths = ("/inventory/new", "/inventory/used")
    results_path = re.compile(r"^/inventory/(?:new|used|certified|cpo|pre-owned|all)/?$", re.I)

    def detail_url(self, card, text: str, page_url: str) -> str | None:
        return card_detail_url(card, text, page_url) or super().detail_url(card, text, page_url)
