"""Turn what sources really send into canonical values.

Every function takes one raw value and returns the canonical value or None; none raises on
bad input (text in pipelines/text.py, numbers, prices and mileages in pipelines/amounts.py).
`normalize` applies them to a VehicleItem and returns a Vehicle plus the notes
(flags) about what it had to discard, such as a placeholder price.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any
from urllib.parse import urljoin

from crawler.models import Vehicle, VehicleItem, canonical_vehicle
from pipelines.amounts import (
    STATED_CODES,
    best_price,
    currency_in,
    mileage,
    number,
    stated_currency,
)
from pipelines.text import text

_YEAR = re.compile(r"\b(19[0-9]{2}|20[0-9]{2})\b")
_VIN_SEPARATORS = re.compile(r"[\s\-_.]")
_PLAIN_VIN = re.compile(r"[A-Z0-9]{17}")


def vin(value: Any) -> str:
    """Upper case, no spaces or separators. Missing gives ''."""
    if value.__class__ is str and _PLAIN_VIN.fullmatch(value):
        return value  # already canonical: most feed rows
    s = text(value) or ""
    return _VIN_SEPARATORS.sub("", s).upper()


def _memo(fn):
    """Cache a normalizer's answers for string values (make, condition, transmission...
    repeat across a feed's rows; a bounded dict, emptied when full)."""
    cache: dict[str, Any] = {}

    def cached(value: Any, *rest: Any) -> Any:
        if rest or value.__class__ is not str:
            return fn(value, *rest)
        try:
            return cache[value]
        except KeyError:
            if len(cache) >= 4096:
                cache.clear()
            out = cache[value] = fn(value)
            return out
    cached.__doc__, cached.__name__, cached.__wrapped__ = fn.__doc__, fn.__name__, fn
    return cached



_CONDITIONS = [
    (re.compile(r"certified|\bcpo\b", re.I), "certified"),
    # used before new: "Used - Like New" is a used car
    (re.compile(r"used|pre-?owned|usedcondition|second.?hand|demo|refurbished", re.I), "used"),
    (re.compile(r"\bnew\b|newcondition|brand new", re.I), "new"),
]


# Google's vehicle listings accept a one-letter condition
_CONDITION_CODES = {"n": "new", "u": "used"}
_YES = frozenset({"1", "y", "yes", "true", "t"})


@_memo
def condition(value: Any) -> str | None:
    s = text(value)
    if not s:
        return None
    if s.lower() in _CONDITION_CODES:
        return _CONDITION_CODES[s.lower()]
    for pattern, canonical in _CONDITIONS:
        if pattern.search(s):
            return canonical
    return None


def condition_of(value: Any, certified: Any) -> str | None:
    """The condition, made 'certified' by a separate certified pre-owned flag that says yes
    (a certified car is a used one; on a new car the flag is the feed's slip: new stays)."""
    stated = condition(value)
    if certified is None or stated == "new":
        return stated
    flag = certified if isinstance(certified, bool) else (text(certified) or "").lower()
    return "certified" if flag is True or flag in _YES else stated


MAKES = {
    "chevy": "Chevrolet", "chevrolet": "Chevrolet", "vw": "Volkswagen",
    "volkswagen": "Volkswagen", "mercedes": "Mercedes-Benz", "mercedes-benz": "Mercedes-Benz",
    "mercedes benz": "Mercedes-Benz", "mb": "Mercedes-Benz", "benz": "Mercedes-Benz",
    "bmw": "BMW", "gmc": "GMC", "mini": "MINI", "ram": "Ram", "fiat": "FIAT",
    "alfa": "Alfa Romeo", "alfa romeo": "Alfa Romeo", "land rover": "Land Rover",
    "landrover": "Land Rover", "range rover": "Land Rover", "rolls royce": "Rolls-Royce",
    "rolls-royce": "Rolls-Royce", "aston martin": "Aston Martin", "mclaren": "McLaren",
    "infinity": "INFINITI", "infiniti": "INFINITI", "kia": "Kia", "hyundai": "Hyundai",
    "genesis": "Genesis", "toyota": "Toyota", "lexus": "Lexus", "honda": "Honda",
    "acura": "Acura", "nissan": "Nissan", "mazda": "Mazda", "subaru": "Subaru",
    "mitsubishi": "Mitsubishi", "ford": "Ford", "lincoln": "Lincoln", "chrysler": "Chrysler",
    "dodge": "Dodge", "jeep": "Jeep", "cadillac": "Cadillac", "buick": "Buick",
    "tesla": "Tesla", "volvo": "Volvo", "polestar": "Polestar", "porsche": "Porsche",
    "audi": "Audi", "jaguar": "Jaguar", "maserati": "Maserati", "ferrari": "Ferrari",
    "lamborghini": "Lamborghini", "bentley": "Bentley", "rivian": "Rivian", "lucid": "Lucid",
    "peugeot": "Peugeot", "citroen": "Citroën", "citroën": "Citroën", "renault": "Renault",
    "skoda": "Škoda", "škoda": "Škoda", "seat": "SEAT", "smart": "smart", "saab": "Saab",
    "pontiac": "Pontiac", "saturn": "Saturn", "scion": "Scion", "suzuki": "Suzuki",
    "hummer": "HUMMER", "mercury": "Mercury", "isuzu": "Isuzu", "oldsmobile": "Oldsmobile",
    "plymouth": "Plymouth", "dacia": "Dacia", "opel": "Opel", "cupra": "CUPRA",
}


@_memo
def make(value: Any) -> str | None:
    s = text(value)
    if not s:
        return None
    key = s.lower().replace("_", " ").strip()
    if key in MAKES:
        return MAKES[key]
    return s if any(c.islower() for c in s) else s.title()


@_memo
def year(value: Any) -> int | None:
    if isinstance(value, str):
        m = _YEAR.search(value)
        value = m.group(1) if m else None
    n = number(value)
    if n is None:
        return None
    y = int(n)
    return y if 1900 <= y <= 2100 else None


_DRIVES = [
    (re.compile(r"\b(awd|all[- ]?wheel)", re.I), "AWD"),
    (re.compile(r"\b(4wd|4x4|four[- ]?wheel|4matic)", re.I), "4WD"),
    (re.compile(r"\b(fwd|front[- ]?wheel)", re.I), "FWD"),
    (re.compile(r"\b(rwd|rear[- ]?wheel|2wd)", re.I), "RWD"),
]


@_memo
def drivetrain(value: Any) -> str | None:
    s = text(value)
    if not s:
        return None
    s = s.rsplit("/", 1)[-1] if s.startswith("http") else s
    for pattern, canonical in _DRIVES:
        if pattern.search(s):
            return canonical
    return s


@_memo
def transmission(value: Any) -> str | None:
    s = text(value)
    if not s:
        return None
    low = s.lower()
    if "cvt" in low or "variable" in low:
        return "CVT"
    if "manual" in low or re.search(r"\bm/?t\b", low):
        return "Manual"
    if "auto" in low or re.search(r"\ba/?t\b", low) or "dual clutch" in low or "dct" in low:
        return "Automatic"
    return s


_IMAGE_SPLIT = re.compile(r"[|,\s]+(?=https?://|//|/)")
_ABSOLUTE = ("http://", "https://")
_SPACE_OR_COMMA = re.compile(r"[\s,]")


def image_urls(value: Any, base: str | None = None) -> list[str]:
    """A de-duplicated list of absolute http(s) image URLs from a list or a joined string."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return []
        if not _SPACE_OR_COMMA.search(value):  # 'https://a/1.jpg|https://a/2.jpg', as feeds
            parts = value.split("|")
            if all(p.startswith(_ABSOLUTE) for p in parts):
                return list(dict.fromkeys(parts))
        parts = _IMAGE_SPLIT.split(value)
    elif isinstance(value, dict):
        parts = [value.get("url") or value.get("contentUrl") or value.get("src")]
    elif not isinstance(value, (list, tuple)):  # a number or boolean is no image
        return []
    else:
        parts = []
        for v in value:
            parts.extend(image_urls(v, base) if isinstance(v, (dict, list)) else [v])
    out: dict[str, None] = {}  # ordered, de-duplicated
    for p in parts:
        s = text(p)
        if not s:
            continue
        if not s.startswith(_ABSOLUTE):
            if base:
                try:
                    s = urljoin(base, s)
                except ValueError:  # '//[x': a host urllib cannot read (an IPv6 bracket)
                    continue
            elif s.startswith("//"):
                s = "https:" + s
            if not s.startswith(_ABSOLUTE):
                continue
        out[s] = None
    return list(out)


# Fields whose value is text. A boolean in one is no text (JSON's false stored as 'False');
# a number is no make and no link, but may be a model ('3'), trim or stock number.
_TEXT_FIELDS = ("stock_number", "condition", "make", "model", "trim", "body_style",
                "exterior_color", "interior_color", "transmission", "drivetrain",
                "fuel_type", "engine", "currency", "availability", "url", "description")
_NO_NUMBER = frozenset({"make", "url"})
# A scheme other than http(s): javascript:, data:, mailto:, tel: ... no page of the car
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*:(?!\d)", re.I)


def _without_non_text(fields: dict[str, Any], odd: list[str], notes: list[str]
                      ) -> dict[str, Any]:
    """`fields` with each of `odd` (fields holding something other than a string) that is
    no text dropped, flagged `<field>_not_text`; lists and objects are left to `text`."""
    out = dict(fields)
    for name in odd:
        value = out[name]
        if value.__class__ is bool or (name in _NO_NUMBER
                                       and isinstance(value, (int, float, Decimal))):
            out[name] = None
            notes.append(f"{name}_not_text")
    return out


def currency(item: VehicleItem, stated: Any) -> tuple[str, str | None]:
    """(ISO code, note): the currency the item states ('EUR', 'eur', '€', 'us$', 'Euro':
    see amounts.stated_currency), else the one its price's text names ('€ 18,5 k', '18500
    EUR'), else USD. A '$' (stated or in the price) names no currency: a feed's default
    (its mapping's defaults fill `currency`) stays. A stated value that is no currency
    ('Bitcoin', 'XYZ') is not stored: it counts as none stated, noted `currency_unknown`."""
    if stated.__class__ is str and stated in STATED_CODES:
        return stated, None  # most items: one look-up
    note = None
    if stated is not None:
        code = stated_currency(stated)
        if code:
            return code, None
        if code is None and text(stated):
            note = "currency_unknown"
    for value in (item.price, item.msrp, *(item.prices.values() if item.prices else ())):
        named = currency_in(value)
        if named:
            return named, note
    return "USD", note


def normalize(item: VehicleItem) -> Vehicle:
    """Canonical vehicle from raw fields. Never raises; VIN may be '' (validate rejects it).
    A value that is no text where text is expected is dropped with a flag naming its field
    (`url_not_text`, `url_not_a_page`), as a placeholder price is, and a stated currency
    that is none (`currency_unknown`). A price is checked against its currency's ceiling."""
    raw = item.__dict__
    # the one check the common row pays: every text field a string (or missing)
    odd = [f for f in _TEXT_FIELDS if (v := raw[f]) is not None and v.__class__ is not str]
    dropped: list[str] = []
    if odd:
        raw = _without_non_text(raw, odd, dropped)
    money, unknown = currency(item, raw["currency"])
    price_value, msrp_value, notes = best_price(item, money)
    notes += dropped
    if unknown:
        notes.append(unknown)
    url = text(raw["url"])
    if url and not url.startswith(_ABSOLUTE) and _SCHEME.match(url):
        url = None
        notes.append("url_not_a_page")
    base = url or (item.source if item.source.startswith("http") else None)
    if url and base and not url.startswith(_ABSOLUTE):
        try:
            url = urljoin(base, url)
        except ValueError:  # a host urllib cannot read: no page to link to
            url = None
            notes.append("url_not_a_page")
    return canonical_vehicle(
        vin=vin(item.vin),
        source=item.source,
        stock_number=text(raw["stock_number"]),
        condition=condition_of(raw["condition"], item.certified),
        year=year(item.year),
        make=make(raw["make"]),
        model=text(raw["model"]),
        trim=text(raw["trim"]),
        body_style=text(raw["body_style"]),
        exterior_color=text(raw["exterior_color"]),
        interior_color=text(raw["interior_color"]),
        transmission=transmission(raw["transmission"]),
        drivetrain=drivetrain(raw["drivetrain"]),
        fuel_type=text(raw["fuel_type"]),
        engine=text(raw["engine"]),
        mileage=mileage(item.mileage, item.mileage_unit),
        price=price_value,
        msrp=msrp_value,
        currency=money,
        availability=text(raw["availability"]),
        url=url,
        image_urls=image_urls(item.image_urls, base),
        description=text(raw["description"]),
        quality_flags=notes,
        # a feed row's content hash (ingest sets it), stored so an unchanged row is skipped
        source_hash=(item.model_extra or {}).get("source_hash"),
    )


def batch(items: list[VehicleItem]) -> list[tuple[VehicleItem, Vehicle]]:
    return [(item, normalize(item)) for item in items]
