"""Amounts in what sources send: numbers, prices and mileages.

Every function takes one raw value and returns the canonical value or None; none raises on
bad input. Thousands and decimal separators are told apart (24,995.00 / 24.995,00 /
24 995 / 24'995), a price's magnitude and payments are read (see `price`), and so is the
currency its text names (`currency_in`) or a source states (`stated_currency`); a mileage
is converted to miles.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

from crawler.models import VehicleItem
from pipelines.text import text

KM_PER_MILE = Decimal("1.609344")
# Thousands may be separated by a space, a no-break space (U+00A0), a narrow no-break space
# (U+202F, as CLDR writes French and Swedish numbers) or a thin space (U+2009).
_NUMBER = re.compile("-?\\d[\\d,. \u00a0\u202f\u2009]*")
_GROUP_SPACES = str.maketrans("", "", " \u00a0\u202f\u2009")
_THOUSANDS_DOT = re.compile(r"\.\d{3}$")
_KM = re.compile(r"\b(km|kmt|kms|kilomet)")
_MIL = re.compile(r"\bmil\b")


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


# Currency marks in a price's text: a symbol, a prefixed dollar ('A$', 'US$'), a local
# abbreviation ('zł', 'Rp', 'kr') or three capitals (an ISO 4217 code when in ISO_CODES)
_MARK_PATTERN = (r"(?<![A-Za-z])(?:US|CA|AU|NZ|HK|MX|NT|[CARS])\$|[$€£¥₹₩₽₺₪₫₱฿₴₦₡₲₸₼₾円]"
                 r"|(?<![A-Za-z])(?:zł|Kč|Rp|Ft|kr|[A-Z]{3})(?![A-Za-z])")
_MARK = re.compile(_MARK_PATTERN)
_MARK_AFTER = re.compile(r"\s*(?:" + _MARK_PATTERN + ")")
# What each mark names; "" where it names several ('$', '¥' JPY or CNY, 'kr' SEK, NOK,
# DKK or ISK): the feed's or dealer's default stays, unless a code beside it says which
# of them (_SHARED)
_SYMBOLS = {"$": "", "¥": "", "kr": "", "€": "EUR", "£": "GBP",
            "₹": "INR", "₩": "KRW", "₽": "RUB", "₺": "TRY",
            "₪": "ILS", "₫": "VND", "₱": "PHP", "฿": "THB",
            "₴": "UAH", "₦": "NGN", "₡": "CRC", "₲": "PYG",
            "₸": "KZT", "₼": "AZN", "₾": "GEL", "円": "JPY",
            "US$": "USD", "C$": "CAD", "CA$": "CAD", "A$": "AUD", "AU$": "AUD",
            "NZ$": "NZD", "HK$": "HKD", "MX$": "MXN", "NT$": "TWD", "S$": "SGD",
            "R$": "BRL", "zł": "PLN", "Kč": "CZK", "Rp": "IDR", "Ft": "HUF"}
# The currencies each mark of several may stand for: '$32,995 CAD' is CAD, '$20,000 EUR'
# names two currencies (so none)
_SHARED = {
    "$": frozenset("""USD CAD AUD NZD HKD SGD TWD MXN ARS CLP COP DOP UYU BSD BBD BZD BMD
                      BND FJD GYD JMD KYD LRD NAD SBD SRD TTD XCD NIO WST""".split()),
    "¥": frozenset({"JPY", "CNY"}),
    "kr": frozenset({"SEK", "NOK", "DKK", "ISK"}),
}
# ISO 4217's current codes, but for three that are English words in capitals ('ALL IN',
# 'TOP DEAL', 'CUP'): other capitals after a price are a magnitude or a note ('1,2 MIO',
# '25000 OBO'), no currency
ISO_CODES = frozenset("""
    AED AFN AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
    GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS
    KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR
    MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD
    RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TRY
    TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWG""".split())
# Characters of a price that names no currency ('24995', '$24,995.00'): such a price's
# text is not searched (most feed rows)
_PLAIN_PRICE = "0123456789.,$* -'\u00a0\u202f\u2009"


def _marks(found: Any) -> Iterator[str]:
    """What each currency mark of `_MARK` matches names (see _SYMBOLS)."""
    for m in found:
        mark = m.group(0).lstrip()
        if mark in _SYMBOLS:
            yield _SYMBOLS[mark]
        elif mark in ISO_CODES:
            yield mark


def _marked(found: Any) -> bool:
    """Whether any of `_MARK`'s matches is a currency mark (one naming several counts)."""
    return next(_marks(found), None) is not None


def currency_in(value: Any) -> str | None:
    """The ISO code of the one currency a price's text names by an unambiguous symbol or
    code: '€ 18,5 k' EUR, '£12,995' GBP, 'CHF 12'345.-' CHF, '18500 EUR' EUR, 'A$29,990'
    AUD; '$32,995 CAD' CAD (the code says which of the symbol's currencies it is). None
    for '$', '¥' or 'kr' alone (each the mark of several currencies), for a text naming
    two ('$20,000 (€18,500)', '$20,000 EUR') and for a price that is no text."""
    if value.__class__ is not str or not value.strip(_PLAIN_PRICE):
        return None
    named: set[str] = set()
    shared: list[frozenset[str]] = []
    for m in _MARK.finditer(value):
        mark = m.group(0)
        code = _SYMBOLS.get(mark, mark if mark in ISO_CODES else None)
        if code:
            named.add(code)
        elif code == "":
            shared.append(_SHARED[mark])
    if len(named) != 1:
        return None
    code = named.pop()
    return code if all(code in among for among in shared) else None


# A currency a source states (a feed's currency column, JSON-LD's priceCurrency) may be a
# code in any case, a mark of `_SYMBOLS` ('€', 'us$') or one of these English names; ""
# where the name stands for several currencies, as '$' does. Kept to names that are safe.
STATED_CODES = ISO_CODES | {"ALL", "CUP", "TOP"}  # not English words where stated
_NAMES = {**dict.fromkeys(("euro", "euros"), "EUR"),
          **dict.fromkeys(("pound", "pounds", "sterling", "pound sterling", "pounds sterling",
                           "british pound", "british pounds"), "GBP"),
          **dict.fromkeys(("yen", "japanese yen"), "JPY"),
          **dict.fromkeys(("us dollar", "us dollars"), "USD"),
          **dict.fromkeys(("dollar", "dollars", "rupee", "rupees", "krona", "kronor",
                           "krone", "kroner", "peso", "pesos", "franc", "francs"), "")}


def stated_currency(value: Any) -> str | None:
    """The ISO code of a currency a source states: 'EUR', 'eur', ' GBP ', '€', 'us$',
    'Euro', 'pounds sterling'. "" for a mark or name of several currencies ('$', 'kr',
    'dollars': a price's own mark or the default decides); None for no currency (empty,
    'N/A', 'XYZ', 'Bitcoin', '978')."""
    if value.__class__ is str and value in STATED_CODES:
        return value  # most sources: one look-up
    s = text(value)
    if not s:
        return None
    upper = s.upper()
    if upper in STATED_CODES:
        return upper
    for key in (s, upper, s.lower().replace(".", "")):  # '€' 'zł'; 'us$'; 'U.S. Dollars'
        if key in _SYMBOLS:
            return _SYMBOLS[key]
        if key in _NAMES:
            return _NAMES[key]
    return currency_in(s)  # a mark beside other text: '€ EUR', '18500 EUR'


# The price ceiling (a sanity check: no car costs more) is 10 million units of a currency,
# times this factor where the unit is worth much less than a dollar: about a million
# dollars' worth at the least, at 2024 rates. Keep each ceiling within the price column
# (numeric(16, 2), migration 0017).
PRICE_CEILING = 10_000_000
_CEILING_FACTORS = {
    **dict.fromkeys("CZK EGP MXN PHP THB TRY TWD UAH ZAR".split(), 10),
    **dict.fromkeys("DZD INR ISK JPY KES LKR PKR RSD RUB".split(), 100),
    **dict.fromkeys("AMD ARS CLP CRC HUF IQD KRW KZT MMK MNT NGN TZS XAF XOF".split(), 1_000),
    **dict.fromkeys("COP GNF IDR KHR LAK MGA PYG UGX UZS VND".split(), 10_000),
    **dict.fromkeys("IRR LBP".split(), 100_000),
}
_CEILINGS = {code: PRICE_CEILING * f for code, f in _CEILING_FACTORS.items()}


def ceiling(currency: str) -> int:
    """The highest price `price` accepts in a currency (an ISO code)."""
    return _CEILINGS.get(currency, PRICE_CEILING)


# What may follow a model year that starts a price ('2019 $25,000', '2019: €18.500'): the
# end, a blank (no valid grouped number starts with four digits) or a separator; not a
# digit, a decimal point or a comma ('2019,000' is a number), but ', ' is checked apart
_AFTER_YEAR = ("", " ", "\u00a0", "\u202f", "\u2009", ":", "-", "/", "|", "$", "€",
               "£")


# The number after a model year: without a sign ('2019-25,000 €': the dash is a separator)
_UNSIGNED = re.compile(_NUMBER.pattern.removeprefix("-?"))


def _after_year(value: str, first: re.Match) -> re.Match:
    """The number after the model year that starts a price ('2019 $25,000', '2019 18.500 €')
    when a currency mark comes before or after it; else `first` (a price of 2019)."""
    after = _UNSIGNED.search(value, 4)
    if after is None:
        return first
    if _marked(_MARK.finditer(value, 4, after.start())):
        return after
    end = after.end()
    scale = _MAGNITUDE.match(value, end)
    marked = _MARK_AFTER.match(value, scale.end() if scale else end)
    return after if marked and _marked((marked,)) else first


def price(value: Any, currency: str = "USD") -> tuple[Decimal | None, str | None]:
    """(price, note). Placeholders (0, 1, 'Call for price') and payments standing for a
    price ('$399/mo', a lease special in the price column) give None with a note; so does
    a negative amount (a rebate, not a price) and one above the `currency`'s ceiling. A
    magnitude counts ('$25k', '$1.2 million'), and an English price in words ('twenty
    thousand'); of 'Was $30,000 Now $28,000', the price now; of '2019 $25,000', the
    amount after the model year."""
    if value is None:
        return None, None
    if isinstance(value, str):
        value = _ungrouped(value)
        first = _NUMBER.search(value)
        # most prices fail the first comparison: the check costs them a slice
        if "1900" <= value[:4] <= "2100" and value[:4].isdigit() \
                and (value[4:5] in _AFTER_YEAR or value[4:6] == ", "):
            first = _after_year(value, first)
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
    # every ceiling is 10M or more: the common price pays one comparison, as before
    if amount > PRICE_CEILING and amount > _CEILINGS.get(currency, PRICE_CEILING):
        return None, "price_implausible"
    return amount.quantize(Decimal("0.01")), None


# Labels dealers put on prices, best first for "what a buyer pays".
_BUYER_PRICE_KEYS = ("final", "final_price", "total_price", "sale", "sale_price", "internet",
                     "internet_price", "selling", "selling_price", "our_price", "price",
                     "asking", "asking_price", "list", "list_price")
_MSRP_KEYS = ("msrp", "retail", "retail_price", "original_price", "sticker")


def best_price(item: VehicleItem, currency: str = "USD"
               ) -> tuple[Decimal | None, Decimal | None, list[str]]:
    """(price a buyer would pay, MSRP, notes) from `price`, `msrp` and labelled `prices`,
    each in `currency` (its ceiling)."""
    notes: list[str] = []
    if not item.prices:  # one price (feeds, most pages): no labels to weigh
        chosen, note = price(item.price, currency)
        msrp_value, _ = price(item.msrp, currency)
        return chosen, msrp_value, [note] if note and chosen is None else []
    labelled = {re.sub(r"[^a-z]+", "_", str(k).lower()).strip("_"): v
                for k, v in item.prices.items()}
    chosen: Decimal | None = None
    for key in _BUYER_PRICE_KEYS:
        if key in labelled:
            chosen, note = price(labelled[key], currency)
            if note:
                notes.append(note)
            if chosen is not None:
                break
    if chosen is None:
        chosen, note = price(item.price, currency)
        if note:
            notes.append(note)
    msrp_value, _ = price(item.msrp, currency)
    if msrp_value is None:
        for key in _MSRP_KEYS:
            if key in labelled:
                msrp_value, _ = price(labelled[key], currency)
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
