"""Team Velocity (Apollo) pages: search-results cards and the vehicle API.

What the real platform serves:
- results at `/inventory/new`, `/inventory/used` (`/inventory/New/<Make>/<Model>?...`),
  paged with `page=N` through `.inventory-pagination a[rel=next]`; each vehicle is a
  `.standard-inventory` card (or `.clean-design-srp-card` on the newer layout) whose
  `data-itemid` ends with the VIN (`Make-Model-Trim-VIN`), linking to
  `/viewdetails/<new|used>/<vin>/<slug>?type=cash` through `a.si-vehicle-box`;
- the site's account id in an inline script (`var accountId = '12345';`), and the full
  record of each vehicle at `/api/Inventory/vehicle?vin=<VIN>&accountid=<id>` as JSON
  (msrp, sellingPrice, buyFors[].buyForPrice, inTransit, inProduction, reserved, eta, ...);
- inline `inventory_listing` state that also names recently viewed and redirected VINs,
  which are not vehicles on sale.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode, urljoin

from parsel import Selector

from crawler.models import VehicleItem
from spiders.extract import attributes
from spiders.extract.dealereprocess import price_key

_WS = re.compile(r"\s+")
_VIN = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$", re.I)
_ACCOUNT_ID = re.compile(r"var\s+accountId\s*=\s*['\"](\d+)['\"]")


def _text(sel: Selector) -> str | None:
    s = _WS.sub(" ", " ".join(sel.xpath(".//text()").getall())).strip()
    return s or None


def vin_from_itemid(itemid: str | None) -> str | None:
    tail = (itemid or "").rsplit("-", 1)[-1].strip()
    return tail.upper() if _VIN.match(tail) else None


def account_id(html: str) -> str | None:
    m = _ACCOUNT_ID.search(html)
    return m.group(1) if m else None


def api_url(page_url: str, vin: str, account: str) -> str:
    return urljoin(page_url, "/api/Inventory/vehicle?" + urlencode({"vin": vin,
                                                                     "accountid": account}))


def _spec(card: Selector, label: str) -> str | None:
    for li in card.css(".vehicle-specs li"):
        name = _text(li.css(".spec-label")[0]) if li.css(".spec-label") else ""
        if name and name.lower().rstrip(":#. ").startswith(label):
            return _text(li.css(".spec-value")[0]) if li.css(".spec-value") else None
    return None


def card_item(card: Selector, page_url: str) -> VehicleItem:
    itemid = card.attrib.get("data-itemid")
    href = card.css("a.si-vehicle-box::attr(href), a.srp-vehicle-box::attr(href), "
                    "a[href*='/viewdetails/']::attr(href)").get()
    title = _text(card.css(".vehicle-title")[0]) if card.css(".vehicle-title") else None
    prices: dict[str, str] = {}
    for row in card.css(".pricing-box li"):
        label, value = row.css(".price-label"), row.css(".price-value")
        if label and value:
            key = price_key(_text(label[0]) or "")
            amount = _text(value[0])
            if key and amount and key not in prices:
                prices[key] = amount
    badge = " ".join(card.css(".inventory-status ::text").getall()).lower()
    parts = (itemid or "").split("-")
    return VehicleItem(
        source=page_url,
        vin=vin_from_itemid(itemid),
        stock_number=_spec(card, "stock"),
        condition=card.attrib.get("data-type") or title,
        year=title,
        make=parts[0] if len(parts) >= 3 else None,
        model=parts[1] if len(parts) >= 3 else None,
        exterior_color=_spec(card, "ext"),
        mileage=_spec(card, "mileage"),
        prices=prices or None,
        availability=attributes.availability(badge) if badge.strip() else None,
        url=urljoin(page_url, href.split("#")[0]) if href else None,
        image_urls=[urljoin(page_url, s)
                    for s in card.css("img.vehicle-image::attr(src)").getall()],
        raw={"data-itemid": itemid, "title": title, "prices": prices},
    )


def listing(sel: Selector, page_url: str) -> list[VehicleItem]:
    cards = sel.xpath(
        "//*[@data-itemid][contains(concat(' ', normalize-space(@class), ' '), "
        "' standard-inventory ') or contains(concat(' ', normalize-space(@class), ' '), "
        "' clean-design-srp-card ')][not(ancestor::*[contains(@class, 'recently-viewed')])]")
    return [card_item(c, page_url) for c in cards]


def _availability(data: dict[str, Any]) -> str | None:
    moving = data.get("inTransit") or data.get("inProduction")
    return attributes.availability(
        "pending" if data.get("reserved") else None, in_transit=bool(data.get("inTransit")),
        in_production=bool(data.get("inProduction")),
        in_stock=not moving and bool(data.get("inStock") or data.get("dateInStock")))


def api_item(data: dict[str, Any], page_url: str) -> VehicleItem:
    """One vehicle from the `/api/Inventory/vehicle` JSON."""
    prices: dict[str, Any] = {}
    buy_fors = data.get("buyFors") or []
    if buy_fors and isinstance(buy_fors[0], dict) and buy_fors[0].get("buyForPrice"):
        prices["final"] = buy_fors[0]["buyForPrice"]
    if data.get("sellingPrice") not in (None, ""):
        prices["sale_price"] = data["sellingPrice"]
    if data.get("msrp") not in (None, ""):
        prices["msrp"] = data["msrp"]
    return VehicleItem(
        source=page_url,
        vin=data.get("vin"),
        stock_number=data.get("stock"),
        condition=data.get("type") or data.get("vehicleType"),
        year=data.get("year"),
        make=data.get("make"),
        model=data.get("model"),
        trim=data.get("trim"),
        body_style=data.get("bodyStyle") or data.get("body"),
        exterior_color=data.get("exteriorColor"),
        interior_color=data.get("interiorColor"),
        transmission=data.get("transmission"),
        drivetrain=data.get("drivetrain"),
        fuel_type=data.get("fuelType"),
        engine=data.get("engine"),
        mileage=data.get("miles") if data.get("miles") is not None else data.get("mileage"),
        prices=prices or None,
        availability=_availability(data),
        url=data.get("vdpUrl"),
        image_urls=data.get("photoUrls") or data.get("images"),
        description=data.get("description"),
        raw=data,
    )


def next_page(html: str, page_url: str) -> str | None:
    sel = Selector(text=html, type="html")
    href = sel.css(".inventory-pagination a[rel='next']::attr(href)").get()
    return urljoin(page_url, href) if href else None


def extract(text: str, page_url: str) -> list[VehicleItem]:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(stripped)
        except ValueError:
            return []
        records = data if isinstance(data, list) else [data]
        return [api_item(d, page_url) for d in records if isinstance(d, dict) and d.get("vin")]
    return listing(Selector(text=text, type="html"), page_url)
