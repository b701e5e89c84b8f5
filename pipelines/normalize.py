"""Turn what sources really send into canonical values.

Every function takes one raw value and returns the canonical value or None; none raises on
bad input. `normalize` applies them to a VehicleItem and returns a Vehicle plus the notes
(flags) about what it had to discard, such as a placeholder price.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urljoin

from crawler.models import Vehicle, VehicleItem, canonical_vehicle

KM_PER_MILE = Decimal("1.609344")
_EMPTY = {"", "n/a", "na", "none", "null", "-", "--", "tbd", "unknown", "not specified"}
_WS = re.compile(r"\s+")


_NEEDS_SPACING = re.compile(r"\s\s|[\n\t\r\xa0]")
_TEXT: dict[str, str | None] = {}  # short strings repeat (models, colours, trims)


def text(value: Any) -> str | None:
    """A trimmed single-line string, or None for empty and placeholder values."""
    if value is None:
        return None
    if value.__class__ is str:  # the common case, kept short: called ~25 times a row
        try:
            return _TEXT[value]
        except KeyError:
            pass
        s = value.strip()
        if _NEEDS_SPACING.search(s):
            s = _WS.sub(" ", s)
        s = None if len(s) < 16 and s.lower() in _EMPTY else s
        if len(value) <= 40:
            if len(_TEXT) >= 8192:
                _TEXT.clear()
            _TEXT[value] = s
        return s
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value if v is not None)
    if isinstance(value, dict):
        value = value.get("name") or value.get("@value") or value.get("value")
        if value is None:
            return None
    s = value.strip() if isinstance(value, str) else str(value).strip()
    if "  " in s or "\n" in s or "\t" in s or "\r" in s or "\xa0" in s:
        s = _WS.sub(" ", s)
    return None if len(s) < 16 and s.lower() in _EMPTY else s


_VIN_SEPARATORS = re.compile(r"[\s\-_.]")
_PLAIN_VIN = re.compile(r"[A-Z0-9]{17}")


def vin(value: Any) -> str:
    """Upper case, no spaces or separators. Missing gives ''."""
    if value.__class__ is str and _PLAIN_VIN.fullmatch(value):
        return value  # already canonical: most feed rows
    s = text(value) or ""
    return _VIN_SEPARATORS.sub("", s).upper()


# Thousands may be separated by a space, a no-break space (U+00A0), a narrow no-break space
# (U+202F, as CLDR writes French and Swedish numbers) or a thin space (U+2009).
_NUMBER = re.compile("-?\\d[\\d,. \u00a0\u202f\u2009]*")
_GROUP_SPACES = str.maketrans("", "", " \u00a0\u202f\u2009")
_THOUSANDS_DOT = re.compile(r"\.\d{3}$")
_KM = re.compile(r"\b(km|kmt|kms|kilomet)")
_MIL = re.compile(r"\bmil\b")
_YEAR = re.compile(r"\b(19[0-9]{2}|20[0-9]{2})\b")


# ... or by an apostrophe, as Swiss numbers are: 12'345.00, 12’345
_APOSTROPHE_GROUP = re.compile("(?<=\\d)['\u2019](?=\\d{3}(?!\\d))")


def _ungrouped(s: str) -> str:
    """`s` without apostrophes grouping thousands (a rare spelling: one scan when none)."""
    return _APOSTROPHE_GROUP.sub("", s) if "'" in s or "\u2019" in s else s


def number(value: Any) -> Decimal | None:
    """The first number in a value: '$24,995.00*' -> 24995.00, '1.234,5' -> 1234.5."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        try:
            d = Decimal(str(value))
        except InvalidOperation:
            return None
        return d if d.is_finite() else None
    if isinstance(value, dict):
        return number(value.get("value") or value.get("price") or value.get("amount"))
    m = _NUMBER.search(_ungrouped(str(value)))
    return None if m is None else _decimal(m.group(0))


def _decimal(found: str) -> Decimal | None:
    """A number `_NUMBER` found, its thousands and decimal separators told apart."""
    raw = found.translate(_GROUP_SPACES)
    if "," in raw and "." in raw:
        # whichever separator comes last is the decimal point
        if raw.rfind(",") > raw.rfind("."):
            raw = raw.replace(".", "").replace(",", ".")
        else:
            raw = raw.replace(",", "")
    elif "," in raw:
        head, _, tail = raw.rpartition(",")
        raw = raw.replace(",", "") if len(tail) == 3 else head.replace(",", "") + "." + tail
    elif raw.count(".") > 1 or _THOUSANDS_DOT.search(raw) and len(raw) > 5:
        raw = raw.replace(".", "")  # '24.995' thousands dot (European)
    try:
        return Decimal(raw)
    except InvalidOperation:
        return None


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


# After a price's first number: it is a payment ("$399/mo", "$250 bi-weekly"), not a price.
_PAYMENT = re.compile(r"\s*(?:(?:/|per\b|a\b)\s*(?:mo\b|mo\.|mths?\b|months?\b|wk\b|weeks?\b)"
                      r"|(?:bi-?)?weekly\b|monthly\b)", re.I)


# After a price's first number: its magnitude ('$25k', '€ 18,5 k', '$1.2 million', '1.2MM',
# '12.5 lakh'). Not a unit ('kr', 'km') nor a word ('MSRP'): no letter may follow.
_MAGNITUDE = re.compile(r"\s*(k|thousand|mm|mn|mill?|millions?|mio|mln|m|lakhs?|lacs?|crores?"
                        r"|bn|billions?)(?![a-z])\.?", re.I)
_MAGNITUDES = {"k": 1_000, "thousand": 1_000, "lakh": 100_000, "lakhs": 100_000,
               "lac": 100_000, "lacs": 100_000, "crore": 10_000_000, "crores": 10_000_000,
               "bn": 10**9, "billion": 10**9, "billions": 10**9}  # any other: a million
# Before it: a minus sign, maybe with a currency symbol ('-$5,000', '− € 5.000'), that the
# number itself does not carry ('$-5,000' and '-5000' do)
_NEGATIVE = re.compile(r"\s*[-\u2212]\s*[^\w\s]{0,3}\s*")
# 'Was $30,000 Now $28,000': the price is the one after 'now'
_NOW = re.compile(r"\bnow\b", re.I)
# A price in English words ('twenty-four thousand nine hundred ninety-five dollars'): only
# number words, 'and' and a currency, so no phrase ('one owner, call') is taken for one
_WORD = re.compile(r"[a-z]+")
_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    " fifteen sixteen seventeen eighteen nineteen".split())}
_UNITS.update({w: 10 * i for i, w in enumerate(
    "twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)})
_BESIDE_WORDS = frozenset({"and", "dollar", "dollars", "usd", "euro", "euros", "eur",
                           "pound", "pounds", "gbp"})


def _in_words(value: str) -> int | None:
    """The number `value` names in English words, or None when it holds another word."""
    total = current = 0
    seen = False
    for word in _WORD.findall(value.lower()):
        if word in _UNITS:
            current += _UNITS[word]
            seen = True
        elif seen and word == "hundred":
            current = (current or 1) * 100
        elif seen and word in ("thousand", "million"):
            total += (current or 1) * (1_000 if word == "thousand" else 1_000_000)
            current = 0
        elif word not in _BESIDE_WORDS:
            return None
    return total + current if seen else None


def price(value: Any) -> tuple[Decimal | None, str | None]:
    """(price, note). Placeholders (0, 1, 'Call for price') and payments standing for a
    price ('$399/mo', a lease special in the price column) give None with a note; so does
    a negative amount (a rebate, not a price). A magnitude counts ('$25k', '$1.2 million'),
    and an English price in words ('twenty thousand'); of 'Was $30,000 Now $28,000', the
    price now."""
    if value is None:
        return None, None
    if isinstance(value, str):
        value = _ungrouped(value)
        first = _NUMBER.search(value)
        if first is not None and (now := _NOW.search(value, first.end())):
            first = _NUMBER.search(value, now.end()) or first
        if first is None:  # no digit
            words = _in_words(value)
            if words is None:
                return None, ("price_placeholder" if text(value) else None)
            amount: Decimal | None = Decimal(words)
        else:
            end = first.end()
            scale = _MAGNITUDE.match(value, end)
            if scale is not None:
                end = scale.end()
            if _PAYMENT.match(value, end):
                return None, "price_placeholder"
            amount = _decimal(first.group(0))
            if amount is not None and scale is not None:
                amount *= _MAGNITUDES.get(scale.group(1).lower(), 1_000_000)
            if amount is not None and _NEGATIVE.fullmatch(value, 0, first.start()):
                amount = -amount
    else:
        amount = number(value)
    if amount is None:
        return None, None
    if amount < -1:
        return None, "price_implausible"
    if amount <= 1 or amount < 100:
        return None, "price_placeholder"
    if amount > 10_000_000:
        return None, "price_implausible"
    return amount.quantize(Decimal("0.01")), None


# Labels dealers put on prices, best first for "what a buyer pays".
_BUYER_PRICE_KEYS = ("final", "final_price", "total_price", "sale", "sale_price", "internet",
                     "internet_price", "selling", "selling_price", "our_price", "price",
                     "asking", "asking_price", "list", "list_price")
_MSRP_KEYS = ("msrp", "retail", "retail_price", "original_price", "sticker")


def best_price(item: VehicleItem) -> tuple[Decimal | None, Decimal | None, list[str]]:
    """(price a buyer would pay, MSRP, notes) from `price`, `msrp` and labelled `prices`."""
    notes: list[str] = []
    if not item.prices:  # one price (feeds, most pages): no labels to weigh
        chosen, note = price(item.price)
        msrp_value, _ = price(item.msrp)
        return chosen, msrp_value, [note] if note and chosen is None else []
    labelled = {re.sub(r"[^a-z]+", "_", str(k).lower()).strip("_"): v
                for k, v in item.prices.items()}
    chosen: Decimal | None = None
    for key in _BUYER_PRICE_KEYS:
        if key in labelled:
            chosen, note = price(labelled[key])
            if note:
                notes.append(note)
            if chosen is not None:
                break
    if chosen is None:
        chosen, note = price(item.price)
        if note:
            notes.append(note)
    msrp_value, _ = price(item.msrp)
    if msrp_value is None:
        for key in _MSRP_KEYS:
            if key in labelled:
                msrp_value, _ = price(labelled[key])
                if msrp_value is not None:
                    break
    if chosen is not None:
        notes = [n for n in notes if n != "price_placeholder"]
    return chosen, msrp_value, sorted(set(notes))


# After a mileage's first number: a 'K' (not 'km') or millions, '45K miles', '~50k',
# '1.2 million' (not 1.2 miles); or litres, an engine size in the wrong column ('1.5L')
_MILEAGE_AFTER = re.compile(r"\s*(?:(k)(?![a-z])|(million|mln\b|mio\b)"
                            r"|(l|ltrs?|lit(?:er|re)s?)(?![a-z]))", re.I)


def mileage(value: Any, unit: Any = None) -> int | None:
    """Miles as an integer: '12,345 mi', '20 000 km', '45K miles', '1.2 million',
    {'value': 53100, 'unitCode': 'KMT'}. None for an engine size ('2.0L')."""
    if isinstance(value, dict):
        unit = unit or value.get("unitCode") or value.get("unitText") or value.get("unit")
        value = value.get("value")
    if isinstance(value, str):
        value = _ungrouped(value)
        first = _NUMBER.search(value)
        if first is None:
            return None
        amount = _decimal(first.group(0))
        after = _MILEAGE_AFTER.match(value, first.end())
        if amount is not None and after is not None:
            if after.group(3):
                return None
            amount = amount * (1000 if after.group(1) else 1_000_000)
    else:
        amount = number(value)
    if amount is None or amount < 0:
        return None
    u = (text(unit) or (value if isinstance(value, str) else "") or "").lower()
    if "k" in u or "mil" in u:  # else miles, as most feeds give: no pattern to try
        if _KM.search(u) or u.endswith("km"):
            amount = amount / KM_PER_MILE
        elif _MIL.search(u) and "mile" not in u:
            amount = amount * 10 / KM_PER_MILE  # Scandinavian 'mil' is 10 km
    if amount > 2_000_000:
        return None
    return int(amount.to_integral_value())


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
                s = urljoin(base, s)
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


def normalize(item: VehicleItem) -> Vehicle:
    """Canonical vehicle from raw fields. Never raises; VIN may be '' (validate rejects it).
    A value that is no text where text is expected is dropped with a flag naming its field
    (`url_not_text`, `url_not_a_page`), as a placeholder price is."""
    price_value, msrp_value, notes = best_price(item)
    raw = item.__dict__
    # the one check the common row pays: every text field a string (or missing)
    odd = [f for f in _TEXT_FIELDS if (v := raw[f]) is not None and v.__class__ is not str]
    if odd:
        raw = _without_non_text(raw, odd, notes)
    url = text(raw["url"])
    if url and not url.startswith(_ABSOLUTE) and _SCHEME.match(url):
        url = None
        notes.append("url_not_a_page")
    base = url or (item.source if item.source.startswith("http") else None)
    if url and base and not url.startswith(_ABSOLUTE):
        url = urljoin(base, url)
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
        currency=(text(raw["currency"]) or "USD").upper()[:3],
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
