"""DealerInspire inventory: the hosted (Algolia) search index named in the page's config.

A DealerInspire search page (`/new-vehicles/`, `/used-vehicles/`, `/inventory/`) renders its
cards in the browser from an Algolia index. The page's inline script carries the index's
public credentials:

    var algoliaConfig = {"appId": "..", "apiKeySearch": "..", "indexName": ".."};
    var inventoryLightningSettings = {"inventoryIndex": "<index>_sort", "refinements": {..}};
    var PARAMS = {"hitsPerPage": 20};

(older sites: `mvnAlgSettings = {"appId", "apiKeySearch", "inventoryIndex"}`). Searches are
`POST https://<appId>-dsn.algolia.net/1/indexes/<index>/query` with headers
`X-Algolia-Application-Id` / `X-Algolia-API-Key` and body `{"params": "<url-encoded
search parameters>"}`; the answer has `hits`, `page` (from 0), `nbPages`, `nbHits`. Paging
reaches only the first `paginationLimitedTo` hits (1,000 by default): `nbHits` says the
true count, `nbPages` stops at the limit and later pages have no hits. `facets=[...]` asks
for hit counts per facet value (`facets`: {attribute: {value: count}}) and each
`facetFilters` entry (an OR-list of `attribute:value`) is AND-ed to the others, which is how
a larger inventory is read in parts (spiders/facet_split.py). A `hosts`
(or `host`) entry in the config overrides the search host; the fixture site uses it to point
the spider at itself.

Hits: vin, stock, type ("New", "Used", "Certified Used"), year, make, model, trim, body,
miles, ext_color, int_color, engine_description, transmission_description, fueltype,
drivetrain, msrp, our_price with a dealer-branded our_price_label, link, thumbnail, and the
status in `lightning.statusLabel` / `lightning.status` / `vehicle_status`.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode, urljoin

from pydantic import BaseModel, Field

from crawler.models import VehicleItem
from spiders.extract import structured
from spiders.extract.attributes import availability

_CONFIG_VARS = ("algoliaConfig", "mvnAlgSettings", "inventoryLightningSettings", "PARAMS")
DEFAULT_HITS_PER_PAGE = 20
MAX_VALUES_PER_FACET = 1000  # the most values Algolia counts per facet
# A search narrowed to facet values: ((attribute, value), ...), each an AND-ed facetFilters
# entry.
Narrowing = tuple[tuple[str, str], ...]


class IndexConfig(BaseModel):
    """Where a DealerInspire page's inventory index lives and how it is asked."""

    app_id: str
    api_key: str
    index: str
    host: str
    hits_per_page: int = DEFAULT_HITS_PER_PAGE
    refinements: dict[str, list[str]] = Field(default_factory=dict)

    @property
    def query_url(self) -> str:
        return f"{self.host.rstrip('/')}/1/indexes/{self.index}/query"

    def headers(self) -> dict[str, str]:
        return {"X-Algolia-Application-Id": self.app_id, "X-Algolia-API-Key": self.api_key,
                "Content-Type": "application/json"}

    def body(self, page: int, narrowed: Narrowing = ()) -> str:
        """One page of the dealer's search, `narrowed` to some facet values (each AND-ed
        to the page's own refinements; see spiders/facet_split.py)."""
        params = {"query": "", "hitsPerPage": self.hits_per_page, "page": page}
        return json.dumps({"params": urlencode({**params, **self._filters(narrowed)})})

    def facets_body(self, narrowed: Narrowing, attributes: tuple[str, ...]) -> str:
        """How many hits each value of `attributes` has in the (narrowed) search: no hits,
        only `nbHits` and `facets` ({attribute: {value: count}})."""
        params = {"query": "", "hitsPerPage": 0, "page": 0,
                  "facets": json.dumps(list(attributes), separators=(",", ":")),
                  "maxValuesPerFacet": MAX_VALUES_PER_FACET}
        return json.dumps({"params": urlencode({**params, **self._filters(narrowed)})})

    def source(self, narrowed: Narrowing = ()) -> str:
        """Where a hit of the (narrowed) search came from, as items name it."""
        if not narrowed:
            return self.query_url
        return self.query_url + "?" + urlencode({"facetFilters": ",".join(
            f"{name}:{value}" for name, value in narrowed)})

    def _filters(self, narrowed: Narrowing) -> dict[str, str]:
        filters = [[f"{field}:{v}" for v in values] for field, values in self.refinements.items()
                   if values]
        filters += [[f"{name}:{_escaped(value)}"] for name, value in narrowed]
        return {"facetFilters": json.dumps(filters, separators=(",", ":"))} if filters else {}


def _escaped(value: str) -> str:
    """A facet value as a filter says it: a leading "-" would negate the filter."""
    return "\\" + value if value.startswith("-") else value


def _js_object(html: str, name: str) -> dict | None:
    """The object literal assigned to a JS variable `name` (JSON syntax), or None."""
    match = re.search(rf"(?:\bvar|\blet|\bconst|window\.|\b)\s*{re.escape(name)}\s*=\s*\{{",
                      html)
    if not match:
        return None
    start = match.end() - 1
    depth, in_string, escaped = 0, "", False
    for i in range(start, min(len(html), start + 200_000)):
        ch = html[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == in_string:
                in_string = ""
        elif ch in "\"'":
            in_string = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                value = _loads_js(html[start:i + 1])
                return value if isinstance(value, dict) else None
    return None


_BARE_KEY = re.compile(r"([{,]\s*)([A-Za-z_$][\w$]*)\s*:")
_SINGLE_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")


def _loads_js(text: str) -> Any:
    """JSON, or a plain JS object literal (bare keys, single quotes, trailing commas)."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    fixed = _SINGLE_QUOTED.sub(lambda m: json.dumps(m.group(1).replace("\\'", "'")), text)
    fixed = _BARE_KEY.sub(r'\1"\2":', fixed)
    fixed = re.sub(r",\s*([}\]])", r"\1", fixed)
    try:
        return json.loads(fixed)
    except ValueError:
        return None


def index_config(html: str) -> IndexConfig | None:
    """The search index a DealerInspire page names in its JavaScript config, or None."""
    objects = {name: _js_object(html, name) or {} for name in _CONFIG_VARS}
    algolia = objects["algoliaConfig"] or objects["mvnAlgSettings"]
    lightning = objects["inventoryLightningSettings"]
    app_id = algolia.get("appId") or algolia.get("applicationId")
    api_key = algolia.get("apiKeySearch") or algolia.get("apiKey") or algolia.get("searchApiKey")
    index = lightning.get("inventoryIndex") or algolia.get("inventoryIndex") \
        or algolia.get("indexName")
    if not (app_id and api_key and index):
        return None
    hosts = algolia.get("hosts") or algolia.get("host")
    if isinstance(hosts, list):
        hosts = hosts[0] if hosts else None
    if isinstance(hosts, dict):
        hosts = hosts.get("url")
    host = str(hosts) if hosts else f"https://{str(app_id).lower()}-dsn.algolia.net"
    if not host.startswith(("http://", "https://")):
        host = "https://" + host
    per_page = objects["PARAMS"].get("hitsPerPage") or DEFAULT_HITS_PER_PAGE
    refinements = {str(k): [str(x) for x in (v if isinstance(v, list) else [v])]
                   for k, v in (lightning.get("refinements") or {}).items() if v}
    try:
        per_page = max(1, min(1000, int(per_page)))
    except (TypeError, ValueError):
        per_page = DEFAULT_HITS_PER_PAGE
    return IndexConfig(app_id=str(app_id), api_key=str(api_key), index=str(index), host=host,
                       hits_per_page=per_page, refinements=refinements)


def next_page(data: dict) -> int | None:
    """The next page number to ask for, or None after the last page (or an empty one)."""
    try:
        page, pages = int(data.get("page", 0)), int(data.get("nbPages", 0))
    except (TypeError, ValueError):
        return None
    return page + 1 if data.get("hits") and page + 1 < pages else None


def stopped_early(data: dict) -> str | None:
    """Why paging stopped before the end of what the answer names ("page 3 of 3 had no
    hits": only a search of no hits at all has an empty page within nbPages), or None.
    Pages are numbered from 0 in the API, from 1 here."""
    try:
        page, pages = int(data.get("page", 0)), int(data.get("nbPages", 0))
    except (TypeError, ValueError):
        return None
    if data.get("hits") or page >= pages:
        return None
    return f"page {page + 1} of {pages} had no hits"


def declared_total(data: dict) -> int | None:
    """How many hits the search declares (`nbHits`), or None."""
    try:
        return int(data["nbHits"])
    except (KeyError, TypeError, ValueError):
        return None


def _condition(hit: dict) -> Any:
    kind = hit.get("type")
    if hit.get("certified") in (True, 1, "1", "true", "yes"):
        return "certified"
    return kind


def vehicle(hit: dict, source: str, site_url: str | None = None) -> VehicleItem:
    """One index hit as raw vehicle fields (relative links are on the dealer's site)."""
    lightning = hit.get("lightning") if isinstance(hit.get("lightning"), dict) else {}
    status = lightning.get("statusLabel") or lightning.get("status") or hit.get("vehicle_status")
    prices = {k: hit[k] for k in ("our_price", "msrp") if hit.get(k) not in (None, "")}
    return VehicleItem(
        source=source,
        vin=hit.get("vin"),
        stock_number=hit.get("stock"),
        condition=_condition(hit),
        year=hit.get("year"),
        make=hit.get("make"),
        model=hit.get("model"),
        trim=hit.get("trim"),
        body_style=hit.get("body"),
        exterior_color=hit.get("ext_color"),
        interior_color=hit.get("int_color"),
        transmission=hit.get("transmission_description"),
        drivetrain=hit.get("drivetrain"),
        fuel_type=hit.get("fueltype"),
        engine=hit.get("engine_description"),
        mileage=hit.get("miles"),
        prices=prices or None,
        availability=availability(status),
        url=urljoin(site_url or source, hit["link"]) if hit.get("link") else None,
        image_urls=hit.get("thumbnail"),
        raw=hit,
    )


def from_api(data: dict, source: str, site_url: str | None = None) -> list[VehicleItem]:
    """Vehicles of one index answer (single query, or the multi-query `results` form);
    `source` is the index URL, `site_url` the dealer page the config came from."""
    answers = data.get("results") if isinstance(data.get("results"), list) else [data]
    items = []
    for answer in answers:
        where = f"{source}#page={answer.get('page', 0)}"
        items += [vehicle(h, where, site_url) for h in answer.get("hits") or []
                  if isinstance(h, dict)]
    return items


def extract(text: str, url: str) -> list[VehicleItem]:
    """Index JSON, or an HTML page (detail pages publish schema.org JSON-LD)."""
    return structured.api_or_page(text, url, from_api)
