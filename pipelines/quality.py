"""Quality stage: score each vehicle and attach its flags."""

from __future__ import annotations

from crawler.models import Vehicle
from quality.score import score


def batch(vehicles: list[Vehicle]) -> list[Vehicle]:
    out = []
    for v in vehicles:
        points, flags = score(v)
        out.append(v.model_copy(update={"quality_score": points, "quality_flags": flags}))
    return out
