"""One entry point for extraction from a saved or fetched page, whatever its platform.

`extract_page` is what `forecourt extract` and the saved-page tests call; spiders call the
same per-platform functions, so what this prints is exactly what a crawl would extract.
"""

from __future__ import annotations

from crawler import pages
from crawler.models import VehicleItem
from spiders.extract import structured
from spiders.registry import extractor_for


def extract_page(text: str, url: str, platform: str | None = None,
                 status: int = 200) -> tuple[str, list[VehicleItem]]:
    """(classification, items) for one page, extracted as `platform` (default: the platform
    detected from the page's signals, else generic)."""
    if platform is None:
        from spiders.detect import detect_platform

        platform = detect_platform(text)[0]
    extractor = extractor_for(platform) or extractor_for("generic") or structured.extract
    items = extractor(text, url)
    return pages.classify(status, text, len(items)), items
