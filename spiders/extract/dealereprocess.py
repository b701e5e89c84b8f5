"""Dealer eProcess (DEP) pages: search-results cards and vehicle detail pages.

What the real platform serves:
- search results at `/search/<new|used>-...-<city>-<st>/?tp=new&...`, paged with `p=N`; the
  pager is a JavaScript widget whose state sits in an inline script
  (`var current_page = 1; var page_count = 3;`) inside `.srp_pagination_links_container`;
- one `.vehicle_item` card per vehicle carrying a URL-encoded JSON `data-vehicle` attribute
  (vin, year, make, model, trim, stock, prices, `vdpHref`), a `.vehicle_item__vehicle_link`,
  an `h2.vehicle_title` and a `dl.vehicle_price` of labelled prices; `.intransit` badges;
- detail pages at `/auto/<slug>/<id>/` with a JSON-LD `Vehicle`, the same `data-vehicle`
  attribute, a `.veh_pricing_container` `<dl>` (TSRP/MSRP, discounts, advertised price),
  `.bolded_label_value` pairs (STOCK, VIN) and, below, "similar vehicles" cards that are
  not the vehicle on the page.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, unquote, urlencode, urljoin, urlsplit, urlunsplit

from parsel import Selector

from crawler.models import VehicleItem
from spiders.extract import attributes, structured

_WS = re.compile(r"\s+")


def _text(sel: Selector | None) -> str | None:
    if sel is None:
        return None
    s = _WS.sub(" ", " ".join(sel.xpath(".//text()").getall())).strip()
    return s or None


def price_key(label: str) -> str | None:
    """The pipeline's price label (see pipelines.amounts.best_price) for a dealer-branded
    price label; None for amounts nobody pays (discounts, rebates, payments). The HTML-card
    platforms share it."""
    low = label.lower()
    if re.search(r"discount|savings|rebate|incentive|bonus|cash back|conditional|payment", low):
        return None
    if "msrp" in low or "tsrp" in low or "retail" in low:
        return "msrp"
    if re.search(r"advertised|final|total|your price|buy (for|price)|net price", low):
        return "final"
    if "eprice" in low or "e-price" in low or "internet" in low:
        return "internet_price"
    if "selling" in low:
        return "selling_price"
    if "sale" in low:
        return "sale_price"
    if "price" in low:
        return "price"
    return None


def labelled_prices(dl: Selector) -> dict[str, str]:
    """`<dt>label</dt><dd>$amount</dd>` pairs as pipeline price labels (first of each wins)."""
    prices: dict[str, str] = {}
    for dt in dl.css("dt"):
        key = price_key(_text(dt) or "")
        dd = dt.xpath("following-sibling::dd[1]")
        amount = _text(dd[0]) if dd else None
        if key and amount and key not in prices:
            prices[key] = amount
    return prices


def availability(text: str | None) -> str | None:
    """The stored availability label (spiders.extract.attributes) for a status badge's text."""
    words = _WS.sub(" ", text or "").strip()
    if not words:
        return None
    low = words.lower()
    if "in transit" in low or "on its way" in low:
        words = "in transit" + (" pending" if "pending" in low else "")
    elif "build phase" in low or "in production" in low:
        words = "in production" + (" pending" if "pending" in low else "")
    elif "in stock" in low:
        words = "in stock"
    elif "pending" not in low:
        return None
    return attributes.availability(words)


def data_vehicle(raw: str | None) -> dict:
    """The URL-encoded JSON of a `data-vehicle` attribute ({} when absent or broken)."""
    if not raw:
        return {}
    try:
        value = json.loads(unquote(raw))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _label_values(scope: Selector) -> dict[str, str]:
    out = {}
    for el in scope.css(".bolded_label_value"):
        label = (_text(el.css(".bolded_label_value__label")[:1][0])
                 if el.css(".bolded_label_value__label") else None)
        value = _text(el.css(".bolded_label_value__value")[:1][0]) \
            if el.css(".bolded_label_value__value") else None
        if label and value:
            out[label.upper().rstrip(":# ")] = value
    return out


def is_detail(sel: Selector) -> bool:
    return bool(sel.css(".veh_pricing_container, .vdp_content"))


def card_item(card: Selector, page_url: str) -> VehicleItem:
    data = data_vehicle(card.attrib.get("data-vehicle"))
    labels = _label_values(card)
    href = (card.css(".vehicle_item__vehicle_link::attr(href)").get()
            or card.css("h2.vehicle_title a::attr(href)").get() or data.get("vdpHref"))
    prices = {}
    for dl in card.css("dl.vehicle_price"):
        prices.update({k: v for k, v in labelled_prices(dl).items() if k not in prices})
    title = _text(card.css("h2.vehicle_title")[0]) if card.css("h2.vehicle_title") else None
    return VehicleItem(
        source=page_url,
        vin=data.get("vin") or labels.get("VIN"),
        stock_number=data.get("stock") or labels.get("STOCK"),
        condition=data.get("type") or title,
        year=data.get("year") or title,
        make=data.get("make"),
        model=data.get("model"),
        trim=data.get("trim"),
        body_style=data.get("bodyStyle"),
        exterior_color=data.get("extColor"),
        interior_color=data.get("intColor"),
        mileage=data.get("mileage"),
        prices=prices or None,
        availability=availability(" ".join(card.css(".intransit ::text").getall())),
        url=urljoin(page_url, href) if href else None,
        image_urls=[urljoin(page_url, s)
                    for s in card.css("img.vehicle_image::attr(src)").getall()],
        raw={"data-vehicle": data, "prices": prices, "title": title},
    )


def listing(sel: Selector, page_url: str) -> list[VehicleItem]:
    """Vehicles in the search results (cards elsewhere on the page, e.g. 'recently viewed'
    widgets, are not the dealer's listing)."""
    cards = sel.xpath(
        "//*[contains(concat(' ', normalize-space(@class), ' '), ' vehicle_item ')]"
        "[not(ancestor::*[contains(@class, 'recently_viewed') or contains(@class, 'similar')])]")
    return [card_item(c, page_url) for c in cards]


def detail(sel: Selector, html: str, page_url: str) -> list[VehicleItem]:
    """The one vehicle a detail page is about: its JSON-LD Vehicle, pricing block and labels."""
    node = next((n for block in structured.json_ld_blocks(html) for n in structured._walk(block)
                 if structured._is_vehicle(n)), None)
    main = sel.css(".vdp_content") or sel.css("body")
    data = data_vehicle(main[0].css("[data-vehicle]::attr(data-vehicle)").get()
                        if main else None)
    labels = _label_values(main[0]) if main else {}
    if node is None and not data:
        return []
    item = structured.item_from_node(node, page_url) if node else VehicleItem(source=page_url)
    prices = {}
    for dl in sel.css(".veh_pricing_container dl"):
        prices.update({k: v for k, v in labelled_prices(dl).items() if k not in prices})
    updates = {
        "vin": item.vin or data.get("vin") or labels.get("VIN"),
        "stock_number": item.stock_number or data.get("stock") or labels.get("STOCK"),
        "year": item.year or data.get("year"),
        "make": item.make or data.get("make"),
        "model": item.model or data.get("model"),
        "trim": item.trim or data.get("trim"),
        "condition": item.condition or data.get("type"),
        "drivetrain": item.drivetrain or _drive_from_name(node),
        # the pricing block says what the buyer pays; JSON-LD `offers.price` is often MSRP
        "prices": prices or item.prices,
        "availability": availability(" ".join(sel.css(".intransit ::text").getall()))
        or attributes.availability(item.availability),
        "url": page_url,
        "raw": {"json-ld": node, "data-vehicle": data, "prices": prices},
    }
    return [item.model_copy(update=updates)]


def _drive_from_name(node: dict | None) -> str | None:
    name = str((node or {}).get("name") or "")
    m = re.search(r"\b(AWD|4WD|FWD|RWD|4x4)\b", name, re.I)
    return m.group(1) if m else None


def next_page(html: str, page_url: str) -> str | None:
    """The next results page from the pager script's `current_page` / `page_count`."""
    sel = Selector(text=html, type="html")
    scripts = " ".join(sel.css(".srp_pagination_links_container script::text").getall())
    current = re.search(r"var\s+current_page\s*=\s*(\d+)", scripts)
    count = re.search(r"var\s+page_count\s*=\s*(\d+)", scripts)
    if not current or not count or int(current.group(1)) >= int(count.group(1)):
        return None
    parts = urlsplit(page_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "p"]
    query.append(("p", str(int(current.group(1)) + 1)))
    # DEP expects parameter names such as `s:pr` unencoded
    return urlunsplit(parts._replace(query=urlencode(query, safe=":")))


def extract(html: str, page_url: str) -> list[VehicleItem]:
    sel = Selector(text=html, type="html")
    if is_detail(sel):
        return detail(sel, html, page_url)
    return listing(sel, page_url)
