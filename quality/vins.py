"""VINs: normalizing, syntax, the check digit, placeholders, and what the VIN says about the car.

`decode(vin)` gives a `VinDecode`: model year, make, model, series, trim and body from NHTSA
vPIC data (quality/vpic.py, offline), with vininfo as the fallback for makers vPIC does not
list (mostly outside North America). `checks(decode, make=..., year=...)` compares it with
what a source states and names every problem; the VIN stage turns those into flags.

Placeholders. Dealers list cars still in production under a VIN-shaped identifier before the
real VIN exists. The ones in the real snapshots (fixtures/real/jkomskis-daily, Toyota) keep a
real WMI, VDS, model-year and plant code, but put letters in the production sequence
(positions 14-15, e.g. 2T16CRAV7TC06D725), where 49 CFR 565.15 requires digits for cars,
MPVs and light trucks; about one in ten of those letters is I or Q, which no VIN contains,
and the check digit is computed as if I were 9 and Q 8 (their place in the alphabet).
Such identifiers are kept and flagged, never decoded as real VINs nor used for cross-dealer
matching. Filler (XXXX, 0000000, 1234567...) is a placeholder too.
"""

from __future__ import annotations

import datetime as dt
import re
from operator import mul
from typing import Any

from pydantic import BaseModel, ConfigDict

from crawler.models import built
from quality import vpic

_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_VALUES = {**{str(d): d for d in range(10)},
           **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
           **dict(zip("JKLMN", range(1, 6), strict=True)),
           "P": 7, "R": 9, **dict(zip("STUVWXYZ", range(2, 10), strict=True))}
# Pre-production identifiers take I, O and Q at their place in the alphabet runs.
_PLACEHOLDER_VALUES = {**_VALUES, "I": 9, "O": 6, "Q": 8}
_NORTH_AMERICA = set("12345")  # first character: US, Canada, Mexico
_YEAR_CODES = "ABCDEFGHJKLMNPRSTVWXY123456789"
_VIN_CHARS = set("0123456789ABCDEFGHJKLMNPRSTUVWXYZ")
_VALID = re.compile(r"[0-9A-HJ-NPR-Z]{17}")
_SEPARATORS = re.compile(r"[\s\-_.]+")
_FILLER = re.compile(r"X{4,}|0{6,}|(.)\1{6,}")
_COUNTING = re.compile("|".join("01234567890123456789"[i:i + 7] for i in range(10)))
_REGIONS = [("ABCDEFGH", "Africa"), ("JKLMNPR", "Asia"), ("STUVWXYZ", "Europe"),
            ("12345", "North America"), ("67", "Oceania"), ("89", "South America")]


class VinDecode(BaseModel):
    """Everything a VIN says, and whether it is a VIN at all."""

    model_config = ConfigDict(frozen=True)

    vin: str
    errors: list[str] = []  # syntax: a non-empty list means this is not a valid VIN
    corrected_from: str | None = None  # the raw value, when I/O/Q typos were fixed
    wmi: str | None = None
    squish_vin: str | None = None
    region: str | None = None
    country: str | None = None
    check_digit: str | None = None  # what position 9 should be
    check_digit_ok: bool = False
    check_digit_required: bool = False
    year_code_ok: bool = False
    model_years: list[int] = []  # candidates, likeliest first
    model_year: int | None = None
    make: str | None = None
    model: str | None = None
    series: str | None = None
    trim: str | None = None
    body_class: str | None = None
    vehicle_type: str | None = None
    manufacturer: str | None = None
    decoder: str | None = None  # vpic (pattern matched), vpic-wmi, vininfo, or None
    vininfo_make: str | None = None
    placeholder: bool = False
    placeholder_reason: str | None = None


def _check_digit(vin: str, values: dict[str, int]) -> str | None:
    if len(vin) != 17:
        return None
    try:
        total = sum(map(mul, map(values.__getitem__, vin), _WEIGHTS))
    except KeyError:
        return None
    rem = total % 11
    return "X" if rem == 10 else str(rem)


def check_digit(vin: str) -> str | None:
    """The check digit a 17-character VIN should carry, or None if it has invalid letters."""
    return _check_digit(vin, _VALUES)


def check_digit_ok(vin: str) -> bool:
    return len(vin) == 17 and check_digit(vin) == vin[8]


def check_digit_required(vin: str) -> bool:
    """North American VINs must carry a correct check digit; elsewhere it is optional."""
    return bool(vin) and vin[0] in _NORTH_AMERICA


def syntax_errors(vin: str) -> list[str]:
    """Why a (normalized) string cannot be a VIN; empty when it can."""
    if _VALID.fullmatch(vin):
        return []
    if not vin:
        return ["missing: no VIN given"]
    out = []
    if len(vin) != 17:
        out.append(f"{len(vin)} characters, not 17")
    bad = sorted({c for c in vin if c not in _VIN_CHARS})
    iqo = [c for c in bad if c in "IOQ"]
    other = [c for c in bad if c not in "IOQ"]
    if iqo:
        out.append(f"{'letter' if len(iqo) == 1 else 'letters'} {', '.join(iqo)}, "
                   "which no VIN contains")
    if other:
        out.append(f"characters {''.join(other)!r} that no VIN contains")
    return out


def normalize(raw: Any) -> tuple[str, str | None]:
    """(VIN, raw value if corrected): upper case without spaces or separators.

    I, O and Q never appear in a VIN. When the VIN only reads as a real one with 1, 0 and 0
    in their place (its check digit proves it), the typo is fixed, wherever the car was
    built: outside North America the check digit is optional, but every car sold in the US
    carries one. A pre-production placeholder (check digit computed with I=9, Q=8) or an
    unverifiable string is left as it is and flagged later. (Where the check digit is not
    used, a wrong reading passes by chance one time in 11; the letter is a typo either way,
    and 1 or 0 is what it nearly always stands for.)
    """
    vin = _SEPARATORS.sub("", str(raw or "")).upper()
    if len(vin) != 17 or not re.search(r"[IOQ]", vin):
        return vin, None
    if _check_digit(vin, _PLACEHOLDER_VALUES) == vin[8]:
        return vin, None
    fixed = vin.translate(str.maketrans("IOQ", "100"))
    if check_digit_ok(fixed) and not syntax_errors(fixed):
        return fixed, vin
    return vin, None


def placeholder_reason(vin: str, light_vehicle: bool | None = None) -> str | None:
    """Why this 17-character string is a placeholder rather than a real VIN, or None."""
    if len(vin) != 17:
        return None
    if _FILLER.search(vin):
        return "filler characters"
    if _COUNTING.search(vin):
        return "a counting sequence, not a serial number"
    serial_letters = re.search(r"[A-Z]", vin[12:])
    north_american_light = vin[0] in _NORTH_AMERICA and light_vehicle is not False
    if serial_letters and (north_american_light or light_vehicle):
        return "letters in the production sequence (positions 13-17), a pre-production VIN"
    if re.search(r"[IOQ]", vin):
        return "letters I, O or Q, which no VIN contains"
    return None


def is_placeholder(vin: str) -> bool:
    return placeholder_reason(vin, _light_vehicle(vin)) is not None


def region(vin: str) -> str | None:
    for chars, name in _REGIONS:
        if vin[:1] in chars:
            return name
    return None


def model_years(vin: str, light_vehicle: bool = False) -> list[int]:
    """Candidate model years from position 10, likeliest first.

    The code repeats every 30 years. For cars, MPVs and light trucks a digit in position 7
    means 1980-2009 and a letter 2010-2039; otherwise years after next year are dropped.
    """
    if len(vin) != 17 or vin[9] not in _YEAR_CODES:
        return []
    index = _YEAR_CODES.index(vin[9])
    old, new = 1980 + index, 2010 + index
    latest = dt.date.today().year + 1
    if light_vehicle and vin[6].isdigit():
        return [old]
    if light_vehicle and new <= latest:
        return [new]
    return [new, old] if new <= latest else [old]


def _light_vehicle(vin: str) -> bool | None:
    if len(vin) != 17:
        return None
    info = vpic.wmi(vpic.wmi_code(vin))
    return info.light_vehicle if info else None


_VININFO: dict[str, dict[str, Any]] = {}
_VININFO_MAX = 65536


def _vininfo(vin: str) -> dict[str, Any]:
    """vininfo's make, country and years. They never depend on the check digit or serial
    number, so they are cached per squish VIN (a small maker's WMI, positions 12-14, kept)."""
    key = vin[:8] + vin[9:11] + (vin[11:14] if len(vin) == 17 and vin[2] == "9" else "")
    found = _VININFO.get(key)
    if found is None:
        if len(_VININFO) >= _VININFO_MAX:
            _VININFO.clear()
        found = _VININFO[key] = _vininfo_uncached(vin)
    return found


def _vininfo_uncached(vin: str) -> dict[str, Any]:
    from vininfo import Vin

    try:
        info = Vin(vin)
        return {"make": _vininfo_make(info.manufacturer, info.brand.title),
                "country": info.country, "years": list(info.years or [])}
    except Exception:  # vininfo raises its own ValidationError (or worse) on bad input
        return {}


def _vininfo_make(label: str | None, brand: str | None) -> str | None:
    """The make from vininfo's label for the WMI and the brand it tells from the VIN.

    The label is sometimes the company that assembles the car (Dafra for the Bajaj it builds
    in Brazil, AvtoVAZ for Lada): then the brand is the make. A label that names the brand
    (Renault Dacia, Opel/Vauxhall) or is a make itself (Infiniti on Nissan's rules) is kept.
    """
    label = None if label == "UnsupportedBrand" else label
    if not brand or brand == "UnsupportedBrand" or not label:
        return label
    squash = lambda s: _NOT_ALNUM.sub("", s.upper())  # noqa: E731
    if squash(brand) in squash(label) or vpic.is_make(label):
        return label
    return brand


def clear_caches() -> None:
    """Forget every decode (benchmarks measure cold decoding)."""
    _PATTERNS.clear()
    _VININFO.clear()
    vpic.clear_cache()


def decode(raw: Any) -> VinDecode:
    """What the VIN says: syntax, check digit, placeholder, model year, make, model, body."""
    vin, corrected_from = normalize(raw)
    errors = syntax_errors(vin)
    base: dict[str, Any] = {"vin": vin, "errors": errors, "corrected_from": corrected_from}
    if len(vin) != 17:
        return VinDecode(**base)
    return _decode17(vin, tuple(errors), corrected_from)


# Per pattern, not per VIN: a feed's VINs are all different, but everything except the
# check digit and the placeholder verdict depends only on the characters a decoder reads
# (positions 1-8, the model-year and plant codes, and as much of the serial as any vPIC
# pattern of that maker reads), so a million-row feed decodes a few thousand patterns.
_PATTERNS: dict[tuple, tuple[bool | None, dict[str, Any]]] = {}  # key -> (light, fields)
_PATTERNS_MAX = 65536
_DECODE_FIELDS = dict.fromkeys(VinDecode.model_fields)
_NOT_ALNUM = re.compile(r"[^A-Z0-9]")


def _decode17(vin: str, errors: tuple[str, ...], corrected_from: str | None) -> VinDecode:
    alnum = not _NOT_ALNUM.search(vin)
    info = vpic.wmi(vpic.wmi_code(vin)) if alnum else None
    reads = 9 + max(2, info.key_length - 6) if info is not None else 11
    key = (vin[:8], vin[9:reads], vin[11:14] if vin[2] == "9" else "", bool(errors), alnum)
    known = _PATTERNS.get(key)
    if known is None:
        fields = _decode_pattern(vin, bool(errors), info)
        light = fields.pop("_light")
    else:
        light, fields = known
    expected = check_digit(vin)
    reason = placeholder_reason(vin, light)
    values = dict(_DECODE_FIELDS)  # in declaration order, as validating would give
    values.update(fields)
    values.update(vin=vin, errors=list(errors), corrected_from=corrected_from,
                  check_digit=expected, check_digit_ok=expected == vin[8],
                  placeholder=reason is not None, placeholder_reason=reason,
                  model_years=list(fields["model_years"]))
    if known is None:  # a pattern's first VIN is validated; the rest reuse its checked types
        if len(_PATTERNS) >= _PATTERNS_MAX:
            _PATTERNS.clear()
        decode = VinDecode(**values)
        _PATTERNS[key] = (light, fields)
        return decode
    return built(VinDecode, values, set(values))


def _decode_pattern(vin: str, has_errors: bool, info: vpic.Wmi | None) -> dict[str, Any]:
    """The fields of a decode that depend on the VIN's pattern alone (plus `_light`)."""
    light = info.light_vehicle if info else None
    years = model_years(vin, bool(light))
    fields: dict[str, Any] = {}
    decoder = None
    vi = _vininfo(vin) if not has_errors else {}
    if info is not None:
        decoded = vpic.decode_key(info.code + vpic.descriptor(vin)[:info.key_length],
                                  tuple(years))
        if decoded:
            fields = {k: decoded[k] for k in ("make", "model", "series", "trim", "body_class",
                                              "vehicle_type", "manufacturer", "country")}
            decoder = "vpic" if decoded["matched"] else "vpic-wmi"
            if decoded["model_year"] and decoded["model_year"] in years:
                years = [decoded["model_year"], *[y for y in years if y != decoded["model_year"]]]
    stale = decoder == "vpic-wmi" and info is not None and bool(years) and \
        info.last_year < years[-1] - 10  # vPIC stopped describing this maker long ago
    if vi.get("make") and (not fields.get("make") or stale):
        fields["make"] = vi["make"]
        decoder = "vininfo"
    if vi.get("country"):
        fields["country"] = vi["country"]
    if vi.get("years") and decoder in ("vininfo", None) and region(vin) != "North America":
        years = sorted(vi["years"], reverse=True)  # brand rules vininfo knows (Ford Australia)
    return {
        "_light": light, "wmi": vpic.wmi_code(vin), "squish_vin": vin[:8] + vin[9:11],
        "region": region(vin), "check_digit_required": check_digit_required(vin),
        "year_code_ok": vin[9] in _YEAR_CODES, "model_years": years,
        "model_year": years[0] if years else None, "decoder": decoder,
        "vininfo_make": vi.get("make"), "make": None, "model": None, "series": None,
        "trim": None, "body_class": None, "vehicle_type": None, "manufacturer": None,
        "country": None, **fields,
    }
