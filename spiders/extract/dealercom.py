"""Dealer.com (Cox Automotive, "DDC") inventory: the getInventory widget API.

A Dealer.com search page (`/new-inventory/index.htm`, `/all-inventory/index.htm`, ...) ships
no vehicles in its HTML. Its inline script calls

    fetch("/api/widget/ws-inv-data/getInventory",
          {method:"POST", headers:{...}, body:decodeURI("<url-encoded JSON>")})

with a body naming the site (`siteId`, `pageAlias`, `widgetName`, `inventoryParameters`,
`preferences.pageSize`, `includePricing`). The answer is JSON: `inventory` (one object per
vehicle: vin, stockNumber, year, make, model, trim, type, link, images, `pricing`,
`attributes` and `trackingAttributes` as name/value lists, status) and `pageInfo`
(totalCount, pageSize, pageStart). Pages are asked for by offset in
`inventoryParameters.start`.

Prices: `pricing.dprice` is a list of price lines whose labels are dealer-branded ("Smith
Price", "Our Price", "Price"...). The line marked `isFinalPrice` is what the buyer pays; MSRP
is `pricing.retailPrice` or the line of type class `msrp`; discount lines are never prices.
`pageInfo.trackingData` repeats every vehicle for analytics and is ignored.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote, urljoin

from pydantic import BaseModel

from crawler.models import VehicleItem
from spiders.extract import structured
from spiders.extract.attributes import availability

_FETCH = re.compile(
    r"""fetch\(\s*["']([^"']*/getInventory)["']\s*,\s*\{(?:(?!\bfetch\().){0,2000}?"""
    r"""body\s*:\s*decodeURI(?:Component)?\(\s*["']([^"']+)["']\s*\)""", re.S)
_MSRP_CLASSES = {"msrp", "retailprice", "retail"}
_SALE_CLASSES = {"internetprice", "saleprice", "askingprice", "sellingprice"}


class InventoryCall(BaseModel):
    """The getInventory request a search page makes (URL and JSON body)."""

    url: str
    body: dict[str, Any]

    def at(self, start: int) -> dict[str, Any]:
        """The body asking for the page starting at offset `start`."""
        body = json.loads(json.dumps(self.body))
        params = body.setdefault("inventoryParameters", {})
        params["start"] = [str(start)]
        return body


def inventory_call(html: str, page_url: str) -> InventoryCall | None:
    """The getInventory call an inline script on the page makes, or None."""
    for match in _FETCH.finditer(html):
        try:
            body = json.loads(unquote(match.group(2)))
        except ValueError:
            continue
        if isinstance(body, dict) and body.get("siteId"):
            return InventoryCall(url=urljoin(page_url, match.group(1)), body=body)
    return None


def page_info(data: dict) -> tuple[int, int, int]:
    """(start, page size, total count) of one getInventory answer."""
    info = data.get("pageInfo") or {}
    return (_int(info.get("pageStart")), _int(info.get("pageSize")) or len(data.get("inventory")
                                                                          or []),
            _int(info.get("totalCount")))


def declared_total(data: dict) -> int | None:
    """The total the answer declares (`pageInfo.totalCount`), or None if it says none."""
    total = (data.get("pageInfo") or {}).get("totalCount")
    return None if total in (None, "") else _int(total)


def next_start(data: dict) -> int | None:
    """Offset of the next page, or None after the last (or an empty) page. The next page
    starts after the entries this one gave, not after its pageSize: a page short of its size
    leaves the rest to be asked for, not skipped."""
    start, _, total = page_info(data)
    received = len(data.get("inventory") or [])
    if not received:
        return None
    nxt = start + received
    return nxt if nxt < total else None


def _int(value: Any) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return 0


def _named(entries: Any) -> dict[str, Any]:
    """[{"name": "odometer", "value": "12,000 miles"}, ...] as a dict (first value wins)."""
    out: dict[str, Any] = {}
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("name") and entry.get("value") not in (None, ""):
            out.setdefault(str(entry["name"]), entry["value"])
    return out


def prices(pricing: dict) -> dict[str, Any]:
    """{"final": .., "internet_price": .., "msrp": ..} from a DDC pricing block."""
    out: dict[str, Any] = {}
    lines = [d for d in pricing.get("dprice") or [] if isinstance(d, dict)]
    for line in lines:
        cls = re.sub(r"[^a-z]", "", str(line.get("typeClass") or line.get("type") or "").lower())
        if line.get("isDiscount"):
            continue
        if line.get("isFinalPrice") and "final" not in out:
            out["final"] = line.get("value")
        elif cls in _MSRP_CLASSES and "msrp" not in out:
            out["msrp"] = line.get("value")
        elif cls in _SALE_CLASSES and "internet_price" not in out:
            out["internet_price"] = line.get("value")
    if pricing.get("retailPrice") and "msrp" not in out:
        out["msrp"] = pricing["retailPrice"]
    return out


def vehicle(entry: dict, source: str, site_url: str) -> VehicleItem:
    """One `inventory` entry as raw vehicle fields."""
    attrs = _named(entry.get("attributes"))
    tracking = _named(entry.get("trackingAttributes"))

    def fact(*names: str) -> Any:
        for name in names:
            for where in (entry, attrs, tracking):
                if where.get(name) not in (None, ""):
                    return where[name]
        return None

    condition = fact("type", "condition", "newOrUsed")
    if entry.get("certified") in (True, "true"):
        condition = "certified"
    link = entry.get("link")
    images = [i.get("uri") for i in entry.get("images") or [] if isinstance(i, dict)]
    return VehicleItem(
        source=source,
        vin=fact("vin"),
        stock_number=fact("stockNumber"),
        condition=condition,
        year=fact("year", "modelYear"),
        make=fact("make"),
        model=fact("model"),
        trim=fact("trim"),
        body_style=fact("bodyStyle"),
        exterior_color=fact("exteriorColor"),
        interior_color=fact("interiorColor"),
        transmission=fact("transmission"),
        drivetrain=fact("driveLine"),
        fuel_type=fact("fuelType", "normalFuelType"),
        engine=fact("engine"),
        mileage=fact("odometer"),
        prices=prices(entry.get("pricing") or {}) or None,
        availability=availability(fact("status")),
        url=urljoin(site_url, link) if link else None,
        image_urls=[urljoin(site_url, i) for i in images if i] or None,
        raw=entry,
    )


def from_api(data: dict, source: str) -> list[VehicleItem]:
    """Vehicles of one getInventory answer (`source` is the API URL it came from)."""
    start, _, _ = page_info(data)
    where = f"{source}#start={start}"
    return [vehicle(e, where, source) for e in data.get("inventory") or []
            if isinstance(e, dict)]


def extract(text: str, url: str) -> list[VehicleItem]:
    """getInventory JSON, or an HTML page (detail pages publish schema.org JSON-LD)."""
    return structured.api_or_page(text, url, from_api)
