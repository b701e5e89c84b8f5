"""Which spider crawls which platform, and which function extracts its pages.

Every module in `spiders/` that defines `PLATFORM` (a name), `Spider` (a DealerSpider) and
`extract(text, url) -> list[VehicleItem]` is a platform; nothing else needs registering.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from types import ModuleType

import spiders
from crawler.errors import InvalidInput


@lru_cache(maxsize=1)
def platforms() -> dict[str, ModuleType]:
    found = {}
    for info in pkgutil.iter_modules(spiders.__path__):
        if info.name.startswith("_") or info.ispkg:
            continue
        module = importlib.import_module(f"spiders.{info.name}")
        name = getattr(module, "PLATFORM", None)
        if name and hasattr(module, "Spider"):
            found[name] = module
    return found


def check_platform(platform: str) -> str:
    """`platform` when forecourt has a spider for it; InvalidInput naming the valid ones."""
    if platform not in platforms():
        raise InvalidInput(f"no spider for platform {platform!r}",
                           hint=f"use one of: {', '.join(sorted(platforms()))}")
    return platform


def spider_for(platform: str | None):
    return platforms()[check_platform(platform or "generic")].Spider


def extractor_for(platform: str | None):
    module = platforms().get(platform or "generic")
    return getattr(module, "extract", None) if module else None


# Platforms whose spider renders every listing page in headless Chromium: a crawl of such a
# dealer is known to need a worker that has Chromium before it starts (jobs/routing.py sends
# it to one). Other platforms render only a page that turns out to be built by scripts.
RENDERING = frozenset({"javascript"})


def renders(platform: str | None) -> bool:
    """Whether a crawl of `platform` renders every listing page (needs Chromium)."""
    return platform in RENDERING
