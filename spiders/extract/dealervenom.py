"""DealerVenom pages: search-results cards and vehicle detail pages.

What the real platform serves:
- results at `/new-vehicles/`, `/used-vehicles/` (filters as query parameters), paged with
  `pg=N` links in an InstantSearch pager (`ul.ais-pagination-ul`, the next link wraps a
  `fa-chevron-right` icon); each vehicle is a `.listing-container` whose `data-url` is its
  detail page; the cards are rendered from the search index, and a saved or rendered page
  holds them as HTML;
- detail pages at `/vehicle/<New|Used>/<year>/<make>/<model>/<VIN>/` carrying the vehicle as
  HTML-entity-escaped JSON in a `data-vehicle` attribute (vin, stockNumber, year, make,
  model, trim, colours, drivetrain, msrp, displayedPrice, ...), a JSON-LD `Car`, a price
  stack and status blocks (`.in-transit-vehicle`, `.allocated-vehicle`, `.in-stock-vehicle`,
  "sale pending" in `.dv-sp-disclaimer`), plus "similar vehicles" cards that are not the
  vehicle on the page.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urljoin

from parsel import Selector

from crawler.models import VehicleItem
from spiders.extract import attributes, structured
from spiders.extract.dealereprocess import price_key

_WS = re.compile(r"\s+")


def _text(sel: Selector) -> str | None:
    s = _WS.sub(" ", " ".join(sel.xpath(".//text()").getall())).strip()
    return s or None


def price_stack(scope: Selector) -> dict[str, str]:
    """Labelled prices of a price stack (`.price-label` beside `.price-value`)."""
    prices: dict[str, str] = {}
    for row in scope.css("li"):
        label = row.css(".price-label")
        value = row.css(".price-value")
        if not label or not value:
            continue
        key = price_key(_text(label[0]) or "")
        amount = _text(value[0])
        if key and amount and key not in prices:
            prices[key] = amount
    return prices


def status(scope: Selector, fallback: str | None = None) -> str | None:
    """The availability label from the platform's status blocks, with "sale pending"."""
    pending = bool(re.search(r"sale\s+pending", " ".join(
        scope.css(".dv-sp-disclaimer ::text").getall()), re.I))
    words = ("pending " if pending else "") + (
        "" if fallback is None or fallback.lower() in ("new", "used", "certified") else fallback)
    label = attributes.availability(
        words.strip() or None, in_transit=bool(scope.css(".in-transit-vehicle")),
        in_production=bool(scope.css(".allocated-vehicle")),
        in_stock=bool(scope.css(".in-stock-vehicle")))
    return label


def card_item(card: Selector, page_url: str) -> VehicleItem:
    a = card.attrib
    title = _text(card.css(".listing-title")[0]) if card.css(".listing-title") else None
    prices = {}
    for stack in card.css(".listing-price-stack"):
        prices.update({k: v for k, v in price_stack(stack).items() if k not in prices})
    miles = card.css(".listing-mileage::text").get()
    return VehicleItem(
        source=page_url,
        vin=a.get("data-vin"),
        stock_number=a.get("data-stock"),
        condition=a.get("data-condition") or title,
        year=a.get("data-year") or title,
        make=a.get("data-make"),
        model=a.get("data-model"),
        trim=a.get("data-trim"),
        exterior_color=a.get("data-ext-color"),
        mileage=miles,
        prices=prices or None,
        availability=status(card),
        url=urljoin(page_url, a["data-url"]) if a.get("data-url") else None,
        image_urls=[urljoin(page_url, s)
                    for s in card.css(".listing-image img::attr(src)").getall()],
        raw={"attributes": dict(a), "prices": prices, "title": title},
    )


def listing(sel: Selector, page_url: str) -> list[VehicleItem]:
    cards = sel.xpath("//*[contains(concat(' ', normalize-space(@class), ' '), "
                      "' listing-container ')][@data-url]"
                      "[not(ancestor::*[contains(@class, 'similar-vehicles')])]")
    return [card_item(c, page_url) for c in cards]


def data_vehicle(sel: Selector) -> dict:
    raw = sel.css("main[data-vehicle]::attr(data-vehicle), .vdp[data-vehicle]::attr(data-vehicle)"
                  ).get()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def is_detail(sel: Selector) -> bool:
    return bool(sel.css("main[data-vehicle], .vdp[data-vehicle]"))


def detail(sel: Selector, html: str, page_url: str) -> list[VehicleItem]:
    data = data_vehicle(sel)
    node = next((n for block in structured.json_ld_blocks(html) for n in structured._walk(block)
                 if structured._is_vehicle(n)), None)
    if not data and node is None:
        return []
    item = structured.item_from_node(node, page_url) if node else VehicleItem(source=page_url)
    prices = {}
    for stack in sel.css(".vdp-price-stack"):
        prices.update({k: v for k, v in price_stack(stack).items() if k not in prices})
    if data.get("msrp") not in (None, ""):
        prices.setdefault("msrp", data["msrp"])
    if data.get("displayedPrice") not in (None, ""):
        prices.setdefault("final", data["displayedPrice"])
    main = sel.css("main[data-vehicle], .vdp[data-vehicle]")[0]
    fields = {
        "vin": data.get("vin") or item.vin,
        "stock_number": data.get("stockNumber") or item.stock_number,
        "condition": data.get("condition") or item.condition,
        "year": data.get("year") or item.year,
        "make": data.get("make") or item.make,
        "model": data.get("model") or item.model,
        "trim": data.get("trim") or item.trim,
        "body_style": data.get("bodyStyle") or item.body_style,
        "exterior_color": data.get("exteriorColor") or item.exterior_color,
        "interior_color": data.get("interiorColor") or item.interior_color,
        "drivetrain": data.get("drivetrain") or item.drivetrain,
        "transmission": data.get("transmission") or item.transmission,
        "engine": data.get("engine") or item.engine,
        "fuel_type": data.get("fuelType") or item.fuel_type,
        "mileage": data.get("mileage") if data.get("mileage") is not None else item.mileage,
        "prices": prices or item.prices,
        "availability": status(main, data.get("status"))
        or attributes.availability(item.availability),
        "url": page_url,
        "raw": {"data-vehicle": data, "json-ld": node, "prices": prices},
    }
    return [item.model_copy(update=fields)]


def next_page(html: str, page_url: str) -> str | None:
    href = Selector(text=html, type="html").xpath(
        '//ul[contains(@class, "ais-pagination-ul")]//a[contains(@class, "ais-Pagination-link")]'
        '[.//i[contains(@class, "fa-chevron-right")]]/@href').get()
    return urljoin(page_url, href) if href else None


def extract(html: str, page_url: str) -> list[VehicleItem]:
    sel = Selector(text=html, type="html")
    if is_detail(sel):
        return detail(sel, html, page_url)
    return listing(sel, page_url)
