"""Decide whether a normalized vehicle may be stored. Rejects carry every reason."""

from __future__ import annotations

import datetime as dt
import re

from crawler.models import Reject, Vehicle, VehicleItem

_VIN_SHAPE = re.compile(r"^[A-Z0-9]{17}$")
_SUSPECT_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# A link or a data URI where a name belongs: a mapping that took an image or page column
_LINK = re.compile(r"(?:data|https?|ftp|javascript):|www\.|//", re.I)


def reasons(vehicle: Vehicle) -> list[str]:
    """Every reason this vehicle cannot be stored; empty when it can."""
    out: list[str] = []
    if not vehicle.vin:
        out.append("missing VIN")
    elif not _VIN_SHAPE.match(vehicle.vin):
        out.append(f"VIN {vehicle.vin[:40]!r} is not 17 letters and digits")
    max_year = dt.date.today().year + 2
    if vehicle.year is not None and not (1950 <= vehicle.year <= max_year):
        out.append(f"model year {vehicle.year} outside 1950-{max_year}")
    if vehicle.mileage is not None and vehicle.mileage > 1_500_000:
        out.append(f"mileage {vehicle.mileage} implausible")
    if not (vehicle.make or vehicle.model or vehicle.year):
        out.append("no make, model or year")
    for field in ("make", "model", "trim"):
        value = getattr(vehicle, field)
        if value and (len(value) > 200 or _SUSPECT_TEXT.search(value)):
            out.append(f"{field} is not a plausible name")
        elif value and _LINK.match(value):
            out.append(f"{field} {value[:40]!r} is a link, not a name")
    return out


def payload(item: VehicleItem) -> dict:
    """The raw item as JSON-safe data, for the rejects table."""
    return item.model_dump(mode="json", exclude_none=True)


def batch(pairs: list[tuple[VehicleItem, Vehicle]]) -> tuple[list[Vehicle], list[Reject]]:
    ok: list[Vehicle] = []
    rejects: list[Reject] = []
    for item, vehicle in pairs:
        why = reasons(vehicle)
        if why:
            vin = vehicle.vin if _VIN_SHAPE.match(vehicle.vin) else None
            rejects.append(Reject(source=item.source, reasons=why, payload=payload(item),
                                  vin=vin, url=None if vin else vehicle.url))
        else:
            ok.append(vehicle)
    return ok, rejects
