"""Vehicle score, 0-100, with named flags. Each rule is a small function of one vehicle.

A rule returns the flags it raises; each flag costs the points in PENALTIES. Flags raised
earlier by other stages (VIN checks, price placeholders) are charged here too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from crawler.models import Vehicle

PENALTIES: dict[str, int] = {
    "vin_placeholder": 10,
    "vin_check_digit": 25,
    "vin_make_mismatch": 20,
    "vin_year_mismatch": 15,
    "price_missing": 20,
    "price_placeholder": 0,  # charged through price_missing
    "price_implausible": 10,
    "no_photos": 15,
    "few_photos": 5,
    "missing_trim": 5,
    "missing_colors": 5,
    "short_description": 5,
    "mileage_missing_used": 10,
    "mileage_new_car_high": 15,
    "missing_model": 10,
}


def rule_price(v: Vehicle) -> list[str]:
    return ["price_missing"] if v.price is None else []


def rule_photos(v: Vehicle) -> list[str]:
    if not v.image_urls:
        return ["no_photos"]
    return ["few_photos"] if len(v.image_urls) < 3 else []


def rule_trim(v: Vehicle) -> list[str]:
    return ["missing_trim"] if not v.trim else []


def rule_model(v: Vehicle) -> list[str]:
    return ["missing_model"] if not v.model else []


def rule_colors(v: Vehicle) -> list[str]:
    return ["missing_colors"] if not (v.exterior_color or v.interior_color) else []


def rule_description(v: Vehicle) -> list[str]:
    return ["short_description"] if not v.description or len(v.description) < 40 else []


def rule_mileage(v: Vehicle) -> list[str]:
    if v.condition in ("used", "certified") and v.mileage is None:
        return ["mileage_missing_used"]
    if v.condition == "new" and v.mileage is not None and v.mileage > 5000:
        age = max(0, dt.date.today().year - (v.year or dt.date.today().year))
        if age <= 2:
            return ["mileage_new_car_high"]
    return []


RULES: list[Callable[[Vehicle], list[str]]] = [
    rule_price, rule_photos, rule_trim, rule_model, rule_colors, rule_description, rule_mileage,
]


def score(v: Vehicle) -> tuple[int, list[str]]:
    flags = set(v.quality_flags)
    for rule in RULES:
        flags.update(rule(v))
    points = 100 - sum(PENALTIES.get(f, 0) for f in flags)
    return max(0, min(100, points)), sorted(flags)
