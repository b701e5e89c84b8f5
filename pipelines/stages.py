"""The stages that need nothing but the items: normalize, validate and the VIN stage.

Kept apart from `pipelines.run` (which needs the database, the quality context and the
job records) so a feed's worker processes (ingest/workers.py) import only these: about
25 MB less in each.
"""

from __future__ import annotations

from crawler.models import Reject, Vehicle, VehicleItem
from pipelines import normalize, validate
from pipelines import vin as vin_stage


def stage_items(items: list[VehicleItem]) -> tuple[list[Vehicle], list[Reject]]:
    """normalize, validate and the VIN stage over one batch."""
    vehicles, rejects = validate.batch(normalize.batch(items))
    return vin_stage.batch(vehicles), rejects
