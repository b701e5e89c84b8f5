"""One entry point for extraction from a saved or fetched page, whatever its platform.

`extract_page` is what `forecourt extract` and the saved-page tests call; spiders call the
same per-platform functions, so what this prints is exactly what a crawl would extract.
"""

from __future__ import annotations

from collections.abc import Callable

from crawler import pages
from crawler.models import VehicleItem
from spiders.extract import structured

Extractor = Callable[[str, str], list[VehicleItem]]

# platform -> extraction function over (page text, page URL); platform modules add theirs.
EXTRACTORS: dict[str, Extractor] = {
    "generic": structured.extract,
}


def extract_page(text: str, url: str, platform: str | None = None,
                 status: int = 200) -> tuple[str, list[VehicleItem]]:
    """(classification, items) for one page."""
    extractor = EXTRACTORS.get(platform or "generic", structured.extract)
    items = extractor(text, url)
    if not items and platform is None:
        items = structured.extract(text, url)
    return pages.classify(status, text, len(items)), items
