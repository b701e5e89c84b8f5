"""VIN checks and decoding: check digit, placeholders, and what the VIN says about the car."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_VALUES = {**{str(d): d for d in range(10)},
           **dict(zip("ABCDEFGH", range(1, 9))), **dict(zip("JKLMN", range(1, 6))),
           "P": 7, "R": 9, **dict(zip("STUVWXYZ", range(2, 10)))}
_NORTH_AMERICA = set("12345")  # first character: US, Canada, Mexico build the check digit in
_YEAR_CODES = "ABCDEFGHJKLMNPRSTVWXY123456789"


def check_digit(vin: str) -> str | None:
    """The check digit a 17-character VIN should carry, or None if it has invalid letters."""
    if len(vin) != 17:
        return None
    total = 0
    for ch, weight in zip(vin, _WEIGHTS, strict=True):
        value = _VALUES.get(ch)
        if value is None:
            return None
        total += value * weight
    rem = total % 11
    return "X" if rem == 10 else str(rem)


def check_digit_ok(vin: str) -> bool:
    return check_digit(vin) == vin[8] if len(vin) == 17 else False


def check_digit_required(vin: str) -> bool:
    """North American VINs must carry a correct check digit; elsewhere it is optional."""
    return bool(vin) and vin[0] in _NORTH_AMERICA


def is_placeholder(vin: str) -> bool:
    """VINs dealers publish for cars still in production: impossible letters, or filler."""
    if len(vin) != 17:
        return False
    if re.search(r"[IOQ]", vin):
        return True
    if re.search(r"(X{4,}|0{6,}|(.)\2{6,})", vin):
        return True
    return False


def model_years(vin: str) -> list[int]:
    """Candidate model years from position 10 (the 30-year cycle gives two)."""
    if len(vin) != 17 or vin[9] not in _YEAR_CODES:
        return []
    index = _YEAR_CODES.index(vin[9])
    return [1980 + index, 2010 + index]


@lru_cache(maxsize=65536)
def _vininfo(vin: str) -> dict[str, Any]:
    from vininfo import Vin

    try:
        info = Vin(vin)
        return {"make": info.manufacturer if info.manufacturer != "UnsupportedBrand" else None,
                "country": info.country, "years": list(info.years or [])}
    except Exception:  # vininfo raises bare ValidationError on bad input
        return {}


def decode(vin: str) -> dict[str, Any]:
    """What the VIN says: make, candidate model years, country, check-digit verdict."""
    info = dict(_vininfo(vin)) if len(vin) == 17 else {}
    info["years"] = model_years(vin) or info.get("years", [])
    info["check_digit_ok"] = check_digit_ok(vin)
    info["placeholder"] = is_placeholder(vin)
    return info
