"""What a platform's search says it holds, against what its pages gave.

Platform searches declare their size: Dealer.com `pageInfo.totalCount`, DealerInspire's index
`nbHits`, DealerOn `itemCount`. A run whose pages gave fewer entries than the search declared,
or whose declared total changed while it paged (under offset paging a car sold or added moves
every later car by one place, so one is read twice or never), did not see one whole
inventory: once the crawl is idle it records why and is incomplete, so settling removes
nothing. A search read in parts (split by facet where paging cannot reach its end,
spiders/facet_split.py) has each part declared and checked, and the entries of its parts
counted as its own: it is whole only when its parts together gave every entry it declared.

Entries are counted as the platform counts them: every entry of its answer, with or without
a VIN we accept (a VIN-less or malformed entry is a vehicle the site lists, and that the
pipeline then rejects, so it is in the total), but each once, by the platform's own id or
else its VIN: a page answering again with entries already read does not make up for the
ones never read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scrapy import signals


@dataclass
class Search:
    """One paged search: what it declared, what its pages gave, and what went wrong."""

    name: str  # how a problem names it: "Dealer.com getInventory of <search page>"
    field: str  # the platform's name for its total: "totalCount", "nbHits", "itemCount"
    declared: int | None = None
    seen: set[str] = field(default_factory=set)
    gaps: list[str] = field(default_factory=list)  # "page 2 of 3 had no hits"
    changed: bool = False
    # the search this one is a part of (a search split by facet, spiders/facet_split.py):
    # entries seen here are seen there too, so the parts must add up to the whole
    parent: Search | None = None


@dataclass
class Totals:
    """A spider's searches, settled once the crawl is idle (see `watch`)."""

    spider: Any
    searches: dict[str, Search] = field(default_factory=dict)
    settled: bool = False

    def search(self, key: str, name: str, total_field: str,
               parent: Search | None = None) -> Search:
        if key not in self.searches:
            self.searches[key] = Search(name=name, field=total_field, parent=parent)
        return self.searches[key]

    def declare(self, search: Search, total: int | None) -> None:
        """A page's declared total: the first is the search's; another one is a problem."""
        if total is None:
            return
        if search.declared is None:
            search.declared = total
        elif total != search.declared and not search.changed:
            search.changed = True
            self.spider.problems.append(
                f"{search.name}: its {search.field} changed from {search.declared} to {total} "
                "while paging (a vehicle sold or added moves the later pages under the "
                "crawl, so one may never have been read)")
            self.spider.incomplete = True

    def saw(self, search: Search, keys: list[str]) -> None:
        """Entries read by a search, counted in the searches it is a part of too."""
        part: Search | None = search
        while part is not None:
            part.seen.update(keys)
            part = part.parent

    def settle(self, *_args: Any) -> None:
        """Once idle: a search that gave fewer entries than it declared (or stopped early)
        leaves the run incomplete."""
        if self.settled:
            return
        self.settled = True
        for search in self.searches.values():
            if search.changed:
                continue  # said already
            gaps = f" ({'; '.join(search.gaps)})" if search.gaps else ""
            if search.declared is not None and len(search.seen) < search.declared:
                self.spider.problems.append(
                    f"{search.name} listed {len(search.seen)} of the {search.declared} "
                    f"vehicles its {search.field} declared{gaps}")
            elif search.declared is None and search.gaps:
                self.spider.problems.append(f"{search.name} stopped early{gaps}")
            else:
                continue
            self.spider.incomplete = True


def watch(spider) -> Totals:
    """The spider's Totals, settled when its crawl goes idle (before it closes)."""
    totals = Totals(spider)
    spider.crawler.signals.connect(totals.settle, signal=signals.spider_idle, weak=False)
    return totals


def entry_key(entry: dict, ids: tuple[str, ...], where: str) -> str:
    """How an API entry is counted once: the platform's own id, else its VIN, else its place
    (`where`: the page and position) for an entry with neither."""
    for name in ids:
        value = entry.get(name)
        if value not in (None, ""):
            return f"{name}:{value}"
    vin = str(entry.get("vin") or "").strip().upper()
    return f"vin:{vin}" if vin else f"at:{where}"
