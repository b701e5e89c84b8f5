"""VIN stage: decode each VIN, check it, and flag what disagrees with the source.

The decode (make, model, year, body, placeholder verdict) is stored as `vin_decoded`; each
failed check becomes a quality flag (see quality/vin_checks.py). A missing make is filled
from the VIN, and a missing model too unless the stated make disagrees with the VIN's.
Placeholders are kept and flagged, never rejected.
"""

from __future__ import annotations

import operator

from crawler.models import Vehicle, updated
from quality import vin_checks, vins

_SUMMARY = ("make", "model", "series", "trim", "body_class", "vehicle_type", "model_year",
            "model_years", "country", "decoder", "check_digit_ok", "placeholder",
            "placeholder_reason")
_VIN_FLAGS = {"vin_invalid", "vin_placeholder", "vin_check_digit", "vin_make_mismatch",
              "vin_year_mismatch", "vin_model_mismatch", "vin_body_mismatch"}


# One dict per distinct decode summary, shared by every vehicle that has it: a feed's
# thousands of cars of one model then carry one object, pickled once per chunk by a stage
# worker and turned into JSON once per batch by the store (see store.prepare). Keyed by the
# summary's values as they stand (model_years as a tuple), so a known decode costs a tuple,
# not a dict.
_SHARED: dict[tuple, dict] = {}
_SHARED_MAX = 65536
_SUMMARY_VALUES = operator.itemgetter(*_SUMMARY)
_YEARS_AT = _SUMMARY.index("model_years")


def _shared(fields: dict) -> dict:
    """The shared summary dict (the non-None values of _SUMMARY) of a decode's fields."""
    values = _SUMMARY_VALUES(fields)
    key = (*values[:_YEARS_AT], tuple(values[_YEARS_AT]), *values[_YEARS_AT + 1:])
    found = _SHARED.get(key)
    if found is None:
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        found = _SHARED[key] = {k: v for k, v in zip(_SUMMARY, values, strict=True)
                                if v is not None}
    return found


def check(vehicle: Vehicle) -> Vehicle:
    decoded = vins.decode(vehicle.vin)
    flags = {f for f in vehicle.quality_flags if f not in _VIN_FLAGS}
    flags.update(vin_checks.fast_flags(decoded, make=vehicle.make, year=vehicle.year,
                                       model=vehicle.model, body=vehicle.body_style))
    updates: dict = {"vin_decoded": _shared(decoded.__dict__),
                     "vin_placeholder": decoded.placeholder, "quality_flags": sorted(flags)}
    if decoded.vin != vehicle.vin and not decoded.errors:
        updates["vin"] = decoded.vin  # an I/O/Q typo the check digit proves
    filler = decoded.placeholder and decoded.decoder is None
    if vehicle.make is None and decoded.make and not filler:
        updates["make"] = decoded.make
    if vehicle.model is None and decoded.model and not filler \
            and "vin_make_mismatch" not in flags:  # the VIN's model, of the car's make
        updates["model"] = decoded.model
    return updated(vehicle, updates)


def batch(vehicles: list[Vehicle]) -> list[Vehicle]:
    return [check(v) for v in vehicles]
