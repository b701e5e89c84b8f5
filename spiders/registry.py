"""Which spider crawls which platform."""

from __future__ import annotations

from crawler.errors import InvalidInput
from spiders.generic import GenericSpider

SPIDERS = {
    "generic": GenericSpider,
}


def spider_for(platform: str | None):
    name = platform or "generic"
    try:
        return SPIDERS[name]
    except KeyError:
        raise InvalidInput(f"no spider for platform {name!r}",
                           hint=f"use one of: {', '.join(sorted(SPIDERS))}") from None
