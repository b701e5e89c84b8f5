"""schema.org vehicles from JSON-LD and microdata.

Handles what real dealer pages publish: `@graph`, `ItemList` of `ListItem`s, `Offer`s with an
`itemOffered` car, cars with `offers`, a `@type` list, the old `VIN` property,
`mileageFromOdometer` with unit codes, brand and model given as objects or strings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from parsel import Selector

from crawler.models import VehicleItem

VEHICLE_TYPES = {"car", "vehicle", "motorcycle", "busorcoach", "motorizedbicycle",
                 "autotrader", "usedcar", "newcar"}
_VIN_KEYS = ("vehicleIdentificationNumber", "VIN", "vin", "serialNumber")


def _types(node: dict) -> set[str]:
    t = node.get("@type") or node.get("type") or []
    if isinstance(t, str):
        t = [t]
    return {str(x).rsplit("/", 1)[-1].lower() for x in t}


def _is_vehicle(node: dict) -> bool:
    types = _types(node)
    if types & VEHICLE_TYPES:
        return True
    return "product" in types and any(node.get(k) for k in _VIN_KEYS)


def _name(value: Any) -> Any:
    if isinstance(value, dict):
        return value.get("name") or value.get("@value")
    if isinstance(value, list):
        return _name(value[0]) if value else None
    return value


def _walk(node: Any) -> Iterator[dict]:
    """Every dict in a JSON-LD document, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _offer(node: dict) -> dict:
    offers = node.get("offers")
    if isinstance(offers, list):
        offers = offers[0] if offers else None
    return offers if isinstance(offers, dict) else {}


def item_from_node(node: dict, page_url: str, parent_offer: dict | None = None) -> VehicleItem:
    """Map one schema.org vehicle node (and its offer) to raw VehicleItem fields."""
    offer = parent_offer or _offer(node)
    spec = offer.get("priceSpecification") or {}
    if isinstance(spec, list):
        spec = spec[0] if spec else {}
    price = offer.get("price") or offer.get("lowPrice") or spec.get("price")
    engine = node.get("vehicleEngine") or {}
    if isinstance(engine, list):
        engine = engine[0] if engine else {}
    vin = next((node.get(k) for k in _VIN_KEYS if node.get(k)), None)
    year = node.get("vehicleModelDate") or node.get("modelDate") or node.get("productionDate")
    name = _name(node.get("name"))
    if not year and isinstance(name, str):
        m = re.match(r"\s*((?:19|20)\d{2})\b", name)
        year = m.group(1) if m else None
    prices = {}
    if price is not None:
        prices["price"] = price
    for extra in ("msrp", "salePrice", "finalPrice"):
        if node.get(extra) is not None:
            prices[extra] = node[extra]
    return VehicleItem(
        source=page_url,
        vin=vin,
        stock_number=node.get("sku") or node.get("productID") or node.get("stockNumber"),
        condition=node.get("itemCondition") or offer.get("itemCondition")
        or node.get("vehicleCondition"),
        year=year,
        make=_name(node.get("brand")) or _name(node.get("manufacturer")),
        model=_name(node.get("model")),
        trim=node.get("vehicleConfiguration") or node.get("trim"),
        body_style=node.get("bodyType"),
        exterior_color=node.get("color"),
        interior_color=node.get("vehicleInteriorColor") or node.get("colorInterior"),
        transmission=node.get("vehicleTransmission") or node.get("transmission"),
        drivetrain=node.get("driveWheelConfiguration"),
        fuel_type=node.get("fuelType") or (engine.get("fuelType") if isinstance(engine, dict)
                                           else None),
        engine=(engine.get("name") or engine.get("engineType")) if isinstance(engine, dict)
        else engine or node.get("engineName"),
        mileage=node.get("mileageFromOdometer"),
        prices=prices or None,
        msrp=node.get("msrp"),
        currency=offer.get("priceCurrency") or spec.get("priceCurrency"),
        availability=_short(offer.get("availability")),
        url=node.get("url") or offer.get("url") or page_url,
        image_urls=node.get("image"),
        description=node.get("description"),
        raw=node,
    )


def _short(value: Any) -> Any:
    if isinstance(value, str) and "schema.org/" in value:
        return value.rsplit("/", 1)[-1]
    return value


def json_ld_blocks(html: str) -> list[Any]:
    """Parsed JSON-LD script blocks; broken ones are skipped (a page may have several)."""
    sel = Selector(text=html, type="html")
    blocks = []
    for raw in sel.css('script[type="application/ld+json"]::text').getall():
        raw = raw.strip().rstrip(";")
        try:
            blocks.append(json.loads(raw))
        except ValueError:
            try:  # common breakage: raw newlines inside strings
                blocks.append(json.loads(re.sub(r"[\r\n\t]+", " ", raw)))
            except ValueError:
                continue
    return blocks


def from_json_ld(html: str, page_url: str) -> list[VehicleItem]:
    items: list[VehicleItem] = []
    seen_ids: set[int] = set()
    for block in json_ld_blocks(html):
        for node in _walk(block):
            if id(node) in seen_ids:
                continue
            if "offer" in _types(node) and isinstance(node.get("itemOffered"), dict) \
                    and _is_vehicle(node["itemOffered"]):
                seen_ids.add(id(node["itemOffered"]))
                items.append(item_from_node(node["itemOffered"], page_url, parent_offer=node))
            elif _is_vehicle(node):
                seen_ids.add(id(node))
                items.append(item_from_node(node, page_url))
    return items


def item_list_urls(html: str, page_url: str) -> list[str]:
    """URLs an `ItemList` points to (listing pages often link vehicles this way)."""
    urls = []
    for block in json_ld_blocks(html):
        for node in _walk(block):
            if "listitem" in _types(node):
                inner = node.get("item")
                target = node.get("url") or (inner.get("url") or inner.get("@id")
                                             if isinstance(inner, dict) else inner)
                if isinstance(target, str):
                    urls.append(target)
    return urls


# --- microdata -------------------------------------------------------------------------------

def _microdata_value(el: Selector) -> Any:
    if el.attrib.get("itemscope") is not None:
        return _microdata_scope(el)
    for attr in ("content", "href", "src", "datetime", "value"):
        if el.attrib.get(attr):
            return el.attrib[attr].strip()
    return " ".join(t.strip() for t in el.xpath(".//text()").getall() if t.strip())


def _microdata_scope(scope: Selector) -> dict:
    node: dict[str, Any] = {"@type": scope.attrib.get("itemtype", "")}
    # properties of this scope only, not of scopes nested inside it
    depth = len(scope.xpath("ancestor-or-self::*[@itemscope]"))
    for el in scope.xpath(".//*[@itemprop]"):
        if len(el.xpath("ancestor::*[@itemscope]")) != depth:
            continue
        for prop in el.attrib["itemprop"].split():
            value = _microdata_value(el)
            if prop in node:
                existing = node[prop]
                node[prop] = (existing if isinstance(existing, list) else [existing]) + [value]
            else:
                node[prop] = value
    return node


def from_microdata(html: str, page_url: str) -> list[VehicleItem]:
    sel = Selector(text=html, type="html")
    items = []
    for scope in sel.xpath("//*[@itemscope][@itemtype][not(@itemprop)]"):
        node = _microdata_scope(scope)
        for candidate in _walk(node):
            if "offer" in _types(candidate) and isinstance(candidate.get("itemOffered"), dict):
                items.append(item_from_node(candidate["itemOffered"], page_url, candidate))
                break
            if _is_vehicle(candidate):
                items.append(item_from_node(candidate, page_url))
                break
    return items


def extract(html: str, page_url: str) -> list[VehicleItem]:
    """Vehicles a page publishes as structured data: JSON-LD first, microdata otherwise."""
    return from_json_ld(html, page_url) or from_microdata(html, page_url)


def api_or_page(text: str, url: str,
                from_api: Callable[[dict, str], list[VehicleItem]]) -> list[VehicleItem]:
    """A platform API's JSON answer through `from_api`, or an HTML page's structured data
    (platform detail pages publish schema.org JSON-LD)."""
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return []
        return from_api(data, url) if isinstance(data, dict) else []
    return extract(text, url)
