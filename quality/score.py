"""Vehicle score, 0-100, with named flags. Each rule is a small function of one vehicle.

A rule takes the vehicle and a `Context` (what the rest of the inventory says: price medians
per make/model/year, photos other vehicles use, VINs other dealers list) and returns the
flags it raises. Each flag costs the points in PENALTIES, so a score is a function of its
flags alone (`points`). Flags raised earlier by other stages (VIN checks, price placeholders)
are kept and charged too. Bump RULES_VERSION whenever a rule or penalty changes: stored
vehicles scored under an older version are rescored by `forecourt quality rescore`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from crawler.models import Vehicle

RULES_VERSION = 3  # 3: market medians per currency

PENALTIES: dict[str, int] = {
    "vin_invalid": 30,
    "vin_placeholder": 10,
    "vin_check_digit": 25,
    "vin_make_mismatch": 20,
    "vin_year_mismatch": 15,
    "vin_model_mismatch": 10,
    "vin_body_mismatch": 5,
    "cross_dealer_duplicate": 10,
    "price_missing": 20,
    "price_placeholder": 0,  # charged through price_missing
    "price_implausible": 10,
    "price_outlier": 10,
    "no_photos": 15,
    "few_photos": 5,
    "photo_placeholder": 10,
    "photo_reused": 5,
    "missing_trim": 5,
    "missing_colors": 5,
    "short_description": 5,
    "mileage_missing_used": 10,
    "mileage_new_car_high": 15,
    "mileage_implausible": 10,
    "missing_model": 10,
}

MIN_PHOTOS = 3
MIN_DESCRIPTION = 40
NEW_CAR_MAX_MILES = 1_000  # a "new" car beyond this has been driven (demo cars stay under)
USED_MAX_MILES_PER_YEAR = 40_000
PRICE_BAND = (0.5, 2.0)  # outside these multiples of the market median is an outlier
PRICE_MIN_SAMPLE = 3  # vehicles needed before a median means anything
_PLACEHOLDER_PHOTO = re.compile(
    r"coming[-_ ]?soon|no[-_ ]?(image|photo|pic)|image[-_ ]?(not|un)[-_ ]?available|"
    r"placeholder|awaiting[-_ ]?(image|photo)|photo[-_ ]?(not|un)[-_ ]?available|"
    r"default[-_ ]?(image|photo|vehicle)|stock[-_ ]?photo|/noimage|blank\.(png|jpe?g|gif)",
    re.I)


def market_key(make: str | None, model: str | None, year: int | None, currency: str | None
               ) -> tuple[str, str, int, str]:
    """A market: one model-year in one currency (a yen price is no outlier of a dollar
    market)."""
    return ((make or "").strip().lower(), (model or "").strip().lower(), year or 0,
            (currency or "USD").upper())


@dataclass
class Context:
    """What the rest of the inventory says, for the rules that compare."""

    # market_key (make, model lower-cased, year, currency) -> (median price, vehicles)
    price_medians: dict[tuple[str, str, int, str], tuple[Decimal, int]] = field(
        default_factory=dict)
    # photo URL -> VINs known to use it (this run and the database), for the photos more
    # than one vehicle uses: a photo missing here is used by no other vehicle
    photo_users: dict[str, set[str]] = field(default_factory=dict)
    # VINs another dealership lists as active
    other_dealer_vins: set[str] = field(default_factory=set)
    today: dt.date = field(default_factory=dt.date.today)


def rule_price(v: Vehicle, ctx: Context) -> list[str]:
    return ["price_missing"] if v.price is None else []


def rule_price_outlier(v: Vehicle, ctx: Context) -> list[str]:
    if v.price is None or not (v.make and v.model and v.year):
        return []
    median, n = ctx.price_medians.get(market_key(v.make, v.model, v.year, v.currency),
                                      (None, 0))
    if median is None or n < PRICE_MIN_SAMPLE or median <= 0:
        return []
    ratio = float(v.price) / float(median)
    return ["price_outlier"] if ratio < PRICE_BAND[0] or ratio > PRICE_BAND[1] else []


def placeholder_photo(url: str) -> bool:
    return bool(_PLACEHOLDER_PHOTO.search(url))


# Every placeholder pattern contains one of these: a URL holding none needs no regex search
# (the case-insensitive search costs ~5 us a URL; these substring tests ~0.2 us).
_PLACEHOLDER_WORDS = ("soon", "image", "photo", "pic", "available", "placeholder",
                      "awaiting", "default", "stock", "blank.")


def real_photos(urls: list[str]) -> list[str]:
    """The URLs that are not placeholder images."""
    if not urls:
        return urls
    joined = " ".join(urls).lower()
    if not any(w in joined for w in _PLACEHOLDER_WORDS):
        return urls
    return [u for u in urls if not placeholder_photo(u)]


def rule_photos(v: Vehicle, ctx: Context) -> list[str]:
    real = real_photos(v.image_urls)
    flags = ["photo_placeholder"] if len(real) < len(v.image_urls) else []
    if not real:
        return [*flags, "no_photos"]
    if len(real) < MIN_PHOTOS:
        flags.append("few_photos")
    users = ctx.photo_users
    for u in real:
        found = users.get(u)
        if found and (len(found) > 1 or v.vin not in found):  # another vehicle uses it
            flags.append("photo_reused")
            break
    return flags


def rule_trim(v: Vehicle, ctx: Context) -> list[str]:
    return ["missing_trim"] if not v.trim else []


def rule_model(v: Vehicle, ctx: Context) -> list[str]:
    return ["missing_model"] if not v.model else []


def rule_colors(v: Vehicle, ctx: Context) -> list[str]:
    return ["missing_colors"] if not (v.exterior_color or v.interior_color) else []


def rule_description(v: Vehicle, ctx: Context) -> list[str]:
    short = not v.description or len(v.description.strip()) < MIN_DESCRIPTION
    return ["short_description"] if short else []


def rule_mileage(v: Vehicle, ctx: Context) -> list[str]:
    age = max(0, ctx.today.year - v.year) if v.year else None
    if v.condition in ("used", "certified"):
        if v.mileage is None:
            return ["mileage_missing_used"]
        if age is not None and age >= 3 and v.mileage < 100:
            return ["mileage_implausible"]  # an odometer of 0 on a car years old
        if age is not None and v.mileage > USED_MAX_MILES_PER_YEAR * (age + 1):
            return ["mileage_implausible"]
    if v.condition == "new" and v.mileage is not None and v.mileage > NEW_CAR_MAX_MILES:
        return ["mileage_new_car_high"]
    return []


def rule_cross_dealer(v: Vehicle, ctx: Context) -> list[str]:
    listed = v.vin in ctx.other_dealer_vins and not v.vin_placeholder
    return ["cross_dealer_duplicate"] if listed else []


Rule = Callable[[Vehicle, Context], list[str]]
RULES: list[Rule] = [
    rule_price, rule_price_outlier, rule_photos, rule_trim, rule_model, rule_colors,
    rule_description, rule_mileage, rule_cross_dealer,
]
# Flags the rules own: recomputed on every scoring (others come from earlier stages).
RULE_FLAGS = {"price_missing", "price_outlier", "no_photos", "few_photos",
              "photo_placeholder", "photo_reused", "missing_trim", "missing_model",
              "missing_colors", "short_description", "mileage_missing_used",
              "mileage_new_car_high", "mileage_implausible", "cross_dealer_duplicate"}


def points(flags: list[str] | set[str]) -> int:
    return max(0, min(100, 100 - sum(PENALTIES.get(f, 0) for f in set(flags))))


def score(v: Vehicle, ctx: Context | None = None) -> tuple[int, list[str]]:
    ctx = ctx or Context()
    flags = {f for f in v.quality_flags if f not in RULE_FLAGS}
    for rule in RULES:
        flags.update(rule(v, ctx))
    return points(flags), sorted(flags)
