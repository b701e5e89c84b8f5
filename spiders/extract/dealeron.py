"""DealerOn listing pages: vehicles in `data-*` attributes, plus a JSON-LD `ItemList`.

A DealerOn search page (`/searchall.aspx`, `/searchnew.aspx`, `/searchused.aspx`) renders
each vehicle as an element marked `data-vehicle-information` whose attributes hold the facts:
data-vin, data-stocknum, data-year, data-make, data-model, data-trim, data-name,
data-bodystyle, data-extcolor, data-intcolor, data-engine, data-fueltype, data-drivetrain,
data-vehicletype, data-cpo, data-msrp, data-price, data-pricelib, data-instock,
data-intransit, data-inproduction, data-dotagging-item-odometer. A JSON-LD `ItemList` names
each vehicle's detail URL; `<script id="dealeron_tagging_data">` holds `itemCount` (all
vehicles of the search) and the page's VINs for analytics. Pages are `?pt=N` (from 1); `pn` is
the page size (when the URL does not say, what page 1 shows: 12 on most sites, 6 or 24 on
some).

Prices: `data-pricelib` is base64 of "Label:value;Label:value" (e.g. "MSRP:..;Selling
Price:..;calc_INTERNET PRICE:..") and is what the card shows; `data-price` is the price when
no price library is given and is "0" when the dealer shows none; `data-msrp` is MSRP.
`data-dotagging-item-price` is an analytics tag that can hold a fee or a payment and is never
used. The tagging data's VINs are analytics and never become vehicles.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from parsel import Selector

from crawler.models import VehicleItem
from spiders.extract import structured
from spiders.extract.attributes import (
    VIN_SHAPE,
    availability,
    card_item,
    data_attributes,
    first,
    flag,
)

DEFAULT_PAGE_SIZE = 12


def price_library(encoded: str | None) -> dict[str, str]:
    """{"msrp": .., "selling_price": .., "internet_price": ..} from a data-pricelib value."""
    if not encoded:
        return {}
    try:
        text = base64.b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return {}
    out: dict[str, str] = {}
    for part in text.split(";"):
        label, sep, value = part.partition(":")
        if not sep or not value.strip():
            continue
        key = re.sub(r"[^a-z]+", "_", label.lower().removeprefix("calc_")).strip("_")
        out.setdefault(key, value.strip())
    return out


_FOOTNOTE = re.compile(r"<a\b[^>]*>.*?</a>|<[^>]+>|\[[A-Za-z_]+\]", re.S)


def plain(value: str | None) -> str | None:
    """An attribute value without the footnote links and tags DealerOn leaves in colours."""
    return _FOOTNOTE.sub("", value).strip() if value else value


def _card(el: Selector, page_url: str) -> VehicleItem | None:
    attrs = data_attributes(el.attrib)
    for name in ("extcolor", "intcolor", "trim", "name"):
        if attrs.get(name):
            attrs[name] = plain(attrs[name]) or ""
    vin = (attrs.get("vin") or "").strip()
    if not VIN_SHAPE.match(vin):
        return None
    link = el.xpath(".//a[contains(@class,'vehicle-title') or contains(@class,'vdp')]/@href"
                    ).get() or el.xpath(".//a[@href][1]/@href").get()
    if not link and "vdp" in (el.attrib.get("class") or "").split():
        link = page_url  # the detail page's own container
    image = el.xpath(".//img/@data-src | .//img/@src").get()
    shown = {k: v for k, v in attrs.items() if not k.startswith("dotagging")}
    shown["odometer"] = attrs.get("dotagging-item-odometer") or attrs.get("odometer") or ""
    item = card_item(shown, page_url, link, image)
    prices: dict[str, Any] = price_library(attrs.get("pricelib"))
    if attrs.get("price") and attrs["price"] != "0":
        prices.setdefault("price", attrs["price"])
    if attrs.get("msrp") and attrs["msrp"] != "0":
        prices.setdefault("msrp", attrs["msrp"])
    item.prices = prices or None
    item.condition = "certified" if flag(attrs, "cpo") else first(attrs, "vehicletype",
                                                                   "condition")
    item.availability = availability(None, flag(attrs, "intransit"),
                                     flag(attrs, "inproduction"), flag(attrs, "instock"))
    item.raw = attrs
    return item


def tagging_data(html: str) -> dict:
    """The `dealeron_tagging_data` JSON (itemCount, the page's VINs), or {}."""
    raw = Selector(text=html, type="html").css("script#dealeron_tagging_data::text").get()
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def declared_total(html: str) -> int | None:
    """How many vehicles the search declares (the tagging data's `itemCount`), or None."""
    try:
        return int(tagging_data(html)["itemCount"])
    except (KeyError, TypeError, ValueError):
        return None


def listed(html: str, items: list[VehicleItem]) -> list[str]:
    """The vehicles a results page lists, each once: its cards (by data-vin, or by place
    for a card without one: the site lists it, the pipeline rejects it) and any vehicle read
    from its JSON-LD. What `itemCount` is compared with."""
    keys = [f"vin:{vin.strip().upper()}" if (vin := el.attrib.get("data-vin") or "").strip()
            else f"card:{n}" for n, el in enumerate(
                Selector(text=html, type="html").xpath("//*[@data-vehicle-information]"))]
    return keys + [f"vin:{str(i.vin).strip().upper()}" for i in items if i.vin]


def search_key(url: str) -> str:
    """A results page's search: its URL without the page number `pt`."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "pt"]
    return urlunsplit(parts._replace(query=urlencode(query)))


def page_urls(html: str, url: str) -> list[str]:
    """The result pages still to fetch: from the first page, all others (itemCount and the
    page size); on a page without itemCount, its `<link rel="next">`. The page size is `pn`
    when the URL says it, else what page 1 shows when that is less than the whole search (a
    dealer can show 6, 12 or 24 a page), else 12."""
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    try:
        page = int(query.get("pt") or 1)
        count = int(tagging_data(html).get("itemCount") or 0)
        size = int(query.get("pn") or 0)
    except (TypeError, ValueError):
        return []
    if not count:
        nxt = Selector(text=html, type="html").css('link[rel="next"]::attr(href)').get()
        return [urljoin(url, nxt.strip())] if nxt else []
    if page != 1 or size < 0:
        return []
    if not size:
        shown = len(Selector(text=html, type="html").xpath("//*[@data-vehicle-information]"))
        size = shown if 0 < shown < count else DEFAULT_PAGE_SIZE
    parts = urlsplit(url)
    return [urlunsplit(parts._replace(query=urlencode({**query, "pt": str(n)})))
            for n in range(2, min(math.ceil(count / size), 500) + 1)]


def extract(html: str, url: str) -> list[VehicleItem]:
    """Vehicles of a DealerOn listing (cards, completed from the ItemList) or detail page."""
    sel = Selector(text=html, type="html")
    items: dict[str, VehicleItem] = {}
    for el in sel.xpath("//*[@data-vehicle-information][@data-vin]"):
        item = _card(el, url)
        if item is not None:
            items.setdefault(str(item.vin).strip().upper(), item)
    for node in structured.from_json_ld(html, url):
        key = str(node.vin or "").strip().upper()
        if not VIN_SHAPE.match(key):
            continue
        if key in items:  # the card is what the dealer shows; the list adds the link
            card = items[key]
            if node.url and node.url != url:
                card.url = urljoin(url, str(node.url))
            card.image_urls = card.image_urls or node.image_urls
            card.description = card.description or node.description
        else:
            items[key] = node
    for link in structured.item_list_urls(html, url):  # URL-only list entries end in the VIN
        tail = re.search(r"([A-HJ-NPR-Z0-9]{17})/?$", link, re.I)
        card = items.get(tail.group(1).upper()) if tail else None
        if card is not None and (not card.url or card.url == url):
            card.url = urljoin(url, link)
    return list(items.values())
