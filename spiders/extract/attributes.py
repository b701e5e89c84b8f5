"""Vehicles published as `data-*` attributes on listing cards: the chain's third step.

Many dealer sites without schema.org data still put each vehicle's facts on its card element
(`<div data-vin=".." data-year=".." data-price="..">`). A `data-vin` alone proves nothing: the
same attribute sits on compare buttons, "recently viewed" widgets and analytics tags, so an
element counts as a vehicle only when it also carries at least two other vehicle facts (year,
make, model, a price, a stock number, a name). Several elements with one VIN are merged.

`availability` turns the in-transit / in-production flags and status words platforms use
into the labels forecourt stores ("In Stock", "In Transit", "In Production", "Sale Pending").
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urljoin

from parsel import Selector

from crawler.models import VehicleItem

VIN_SHAPE = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$", re.I)
_VIN_ATTRS = ("vin", "vehicle-vin", "vehiclevin")
_FACTS = ("year", "make", "model", "trim", "name", "stocknum", "stock", "stocknumber",
          "stock-number", "price", "msrp", "saleprice", "internetprice", "finalprice")
# data-* price attributes and the labels pipelines/normalize.py best_price understands.
_PRICE_LABELS = {"finalprice": "final_price", "final-price": "final_price",
                 "internetprice": "internet_price", "internet-price": "internet_price",
                 "saleprice": "sale_price", "sale-price": "sale_price",
                 "sellingprice": "selling_price", "price": "price", "askingprice": "asking_price",
                 "msrp": "msrp"}
_TRUE = {"true", "1", "yes", "y"}


def data_attributes(attrib: dict[str, str]) -> dict[str, str]:
    """An element's data-* attributes without the prefix, lower-case names, trimmed values."""
    return {k[5:].lower(): (v or "").strip() for k, v in attrib.items()
            if k.lower().startswith("data-")}


def first(attrs: dict[str, str], *names: str) -> str | None:
    for name in names:
        value = attrs.get(name)
        if value:
            return value
    return None


def flag(attrs: dict[str, str], name: str) -> bool:
    return (attrs.get(name) or "").lower() in _TRUE


def availability(status: Any = None, in_transit: bool = False, in_production: bool = False,
                 in_stock: bool = False) -> str | None:
    """One availability label from a platform's status word or its boolean flags."""
    words = re.sub(r"[_\-]+", " ", str(status or "")).strip().lower()
    pending = "pending" in words
    if in_production or "production" in words or "build" in words or "factory" in words:
        label = "In Production"
    elif in_transit or "transit" in words:
        label = "In Transit"
    elif in_stock or words in ("live", "in stock", "instock", "available", "on lot"):
        label = "In Stock"
    elif pending:
        return "Sale Pending"
    elif words:
        return words.title()
    else:
        return None
    return f"Sale Pending - {label}" if pending else label


def card_item(attrs: dict[str, str], page_url: str, link: str | None = None,
              image: str | None = None) -> VehicleItem:
    """Raw vehicle fields from one card's data attributes."""
    prices = {label: attrs[name] for name, label in _PRICE_LABELS.items() if attrs.get(name)}
    condition = first(attrs, "condition", "vehicletype", "type", "vehicle-condition")
    if flag(attrs, "cpo") or flag(attrs, "certified"):
        condition = "certified"
    return VehicleItem(
        source=page_url,
        vin=first(attrs, *_VIN_ATTRS),
        stock_number=first(attrs, "stocknum", "stock", "stocknumber", "stock-number"),
        condition=condition,
        year=first(attrs, "year", "modelyear"),
        make=first(attrs, "make"),
        model=first(attrs, "model"),
        trim=first(attrs, "trim"),
        body_style=first(attrs, "bodystyle", "body", "body-style"),
        exterior_color=first(attrs, "extcolor", "exteriorcolor", "exterior-color", "color"),
        interior_color=first(attrs, "intcolor", "interiorcolor", "interior-color"),
        transmission=first(attrs, "transmission", "trans"),
        drivetrain=first(attrs, "drivetrain", "driveline", "drivetype"),
        fuel_type=first(attrs, "fueltype", "fuel-type", "fuel"),
        engine=first(attrs, "engine"),
        mileage=first(attrs, "mileage", "odometer", "miles"),
        prices=prices or None,
        availability=availability(first(attrs, "status", "vehiclestatus"),
                                  flag(attrs, "intransit"), flag(attrs, "inproduction"),
                                  flag(attrs, "instock")),
        url=urljoin(page_url, link) if link else None,
        image_urls=[urljoin(page_url, image)] if image else None,
        raw=attrs,
    )


def _fact_count(attrs: dict[str, str]) -> int:
    return sum(1 for name in _FACTS if attrs.get(name) and attrs[name] != "0")


def extract(html: str, page_url: str) -> list[VehicleItem]:
    """Vehicles a page carries as data-* attributes; analytics and button VINs are ignored."""
    sel = Selector(text=html, type="html")
    found: dict[str, tuple[dict[str, str], Selector]] = {}
    order: list[str] = []
    for el in sel.xpath("//*[@data-vin or @data-vehicle-vin or @data-vehiclevin]"):
        attrs = data_attributes(el.attrib)
        vin = (first(attrs, *_VIN_ATTRS) or "").replace(" ", "")
        if not VIN_SHAPE.match(vin) or _fact_count(attrs) < 2:
            continue
        key = vin.upper()
        if key not in found:
            order.append(key)
            found[key] = (attrs, el)
        else:  # the richer element leads; the other fills gaps
            kept, kept_el = found[key]
            lead, lead_el = (attrs, el) if _fact_count(attrs) > _fact_count(kept) \
                else (kept, kept_el)
            merged = {**(kept if lead is attrs else attrs), **{k: v for k, v in lead.items()
                                                               if v}}
            found[key] = (merged, lead_el)
    items = []
    for key in order:
        attrs, el = found[key]
        link = first(attrs, "url", "vdp", "vdpurl", "link", "href") \
            or el.xpath(".//a[@href][1]/@href").get()
        image = el.xpath(".//img/@data-src | .//img/@src").get()
        items.append(card_item(attrs, page_url, link, image))
    return items
