"""VIN stage: decode each VIN, flag check-digit failures and disagreements with the source."""

from __future__ import annotations

from crawler.models import Vehicle
from quality import vins


def check(vehicle: Vehicle) -> Vehicle:
    decoded = vins.decode(vehicle.vin)
    flags = list(vehicle.quality_flags)
    placeholder = bool(decoded.get("placeholder"))
    if placeholder:
        flags.append("vin_placeholder")
    elif not decoded["check_digit_ok"] and vins.check_digit_required(vehicle.vin):
        flags.append("vin_check_digit")
    decoded_make = decoded.get("make")
    if not placeholder and decoded_make and vehicle.make and \
            decoded_make.lower() not in vehicle.make.lower() and \
            vehicle.make.lower() not in decoded_make.lower():
        flags.append("vin_make_mismatch")
    years = decoded.get("years") or []
    if not placeholder and years and vehicle.year and vehicle.year not in years:
        flags.append("vin_year_mismatch")
    updates = {"vin_decoded": decoded, "vin_placeholder": placeholder,
               "quality_flags": sorted(set(flags))}
    if vehicle.make is None and decoded_make and not placeholder:
        updates["make"] = decoded_make
    return vehicle.model_copy(update=updates)


def batch(vehicles: list[Vehicle]) -> list[Vehicle]:
    return [check(v) for v in vehicles]
