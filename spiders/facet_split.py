"""Reading a hosted (Algolia) search whole when paging cannot reach its end.

Algolia pages only the first `paginationLimitedTo` hits of a search (1,000 unless the index
owner raised it): `nbHits` still says the true count (1,350), but `nbPages` stops at
1000 / hitsPerPage and later pages answer no hits. A dealer with more vehicles than that is
never read whole by paging, so its runs could never remove a sold car.

Such a search is split by facet: one request asks how many hits each value of the facets in
`FACETS` has (coarse to fine: stock type, make, model, year, ...), and the search is read
again once per value of the first facet that covers every hit (its counts add up to the
search's `nbHits`) and has two values or more; a value that still exceeds the limit is split
again by a finer facet. Each part is its own declared search (spiders/totals.py), and its
hits count in its parent's too, so the parent is complete only when the parts together gave
every hit it declared.

When no facet covers every hit (vehicles without a make, a year, ...), the search is split by
the facet that covers most (so the run still reads what it can) and the run is partial,
with a problem naming the numbers; when no facet splits at all, the search is paged to its
limit and the run is partial. Neither removes a car on a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PAGING_LIMIT = 1000  # Algolia's default paginationLimitedTo
# DealerInspire's facet attributes (its inventory indexes are faceted by these, among others),
# coarse to fine. An attribute the index does not facet by is simply absent from the answer.
FACETS = ("type", "make", "model", "year", "trim", "body", "ext_color_generic")


@dataclass(frozen=True)
class Split:
    """How to split a search: by `attribute` into `counts` ({value: hits}), or not at all
    (attribute None); `problem` says why the parts cannot be the whole search."""

    attribute: str | None
    counts: dict[str, int] = field(default_factory=dict)
    problem: str | None = None


def beyond_paging(data: dict, hits_per_page: int) -> int | None:
    """How many hits paging reaches, when the answer's `nbHits` is more than that; None when
    paging reaches every hit (or the answer does not say)."""
    try:
        total = int(data["nbHits"])
        pages = int(data.get("nbPages") or 0)
        per_page = int(data.get("hitsPerPage") or hits_per_page)
    except (KeyError, TypeError, ValueError):
        return None
    reachable = min(pages * per_page, PAGING_LIMIT)
    return reachable if total > reachable else None


def facet_counts(data: dict) -> dict[str, dict[str, int]]:
    """The `facets` of an answer as {attribute: {value: count}} (malformed counts dropped)."""
    facets = data.get("facets") if isinstance(data.get("facets"), dict) else {}
    out: dict[str, dict[str, int]] = {}
    for name, values in facets.items():
        if not isinstance(values, dict):
            continue
        counts = {}
        for value, count in values.items():
            try:
                counts[str(value)] = int(count)
            except (TypeError, ValueError):
                continue
        out[str(name)] = {v: c for v, c in counts.items() if c > 0}
    return out


def choose(counts: dict[str, dict[str, int]], total: int,
           attributes: tuple[str, ...]) -> Split:
    """The facet among `attributes` (in order) to split a search of `total` hits by."""
    splitting = [a for a in attributes if len(counts.get(a) or {}) >= 2]
    for name in splitting:
        if sum(counts[name].values()) == total:
            return Split(name, counts[name])
    coverage = ", ".join(f"{name} {sum(counts[name].values()):,}" for name in attributes
                         if counts.get(name))
    coverage = f" (hits with a value: {coverage})" if coverage else ""
    if not splitting:
        facets = f"no facet of {', '.join(attributes)}" if attributes else "no facet left"
        return Split(None, problem=f"{facets} splits its {total:,} hits into parts{coverage}")
    best = max(splitting, key=lambda name: min(sum(counts[name].values()), total))
    covered = sum(counts[best].values())
    return Split(best, counts[best], problem=(
        f"no facet covers all its {total:,} hits{coverage}; split by {best}, which leaves "
        f"{total - covered:,} hits in no part" if covered < total else
        f"no facet's counts add up to its {total:,} hits{coverage}; split by {best}"))
