"""The run report and the delisting gate.

A run ends by asking for a verdict: healthy, degraded or failed, with reasons. Only a healthy,
complete run may mark vehicles it did not see as removed. The baseline is the dealer's own
recent healthy runs, so a crawl that suddenly finds a tenth of the usual inventory, or a feed
that arrives half empty, changes nothing it did not see.
"""

from __future__ import annotations

import statistics
from typing import Any

DEFAULTS: dict[str, float] = {
    # fraction of the usual item count below which a run is degraded / failed
    "min_count_ratio": 0.7,
    "fail_count_ratio": 0.2,
    # share of items rejected above which a run is degraded / failed
    "max_reject_rate": 0.2,
    "fail_reject_rate": 0.6,
    # drops smaller than this many vehicles are ordinary sales, whatever the ratio
    "min_count_drop": 5,
}


def thresholds(dealer_settings: dict[str, Any] | None) -> dict[str, float]:
    """Defaults overridden by the dealer's own `gate` settings."""
    merged = dict(DEFAULTS)
    merged.update((dealer_settings or {}).get("gate", {}))
    return merged


def evaluate(counters: dict[str, int], *, complete: bool, problems: list[str],
             history_counts: list[int], limits: dict[str, float] | None = None) -> dict[str, Any]:
    """The run report: verdict, reasons and the figures they rest on."""
    limits = limits or DEFAULTS
    reasons: list[str] = []
    verdict = "healthy"

    def worse(level: str, reason: str) -> None:
        nonlocal verdict
        reasons.append(reason)
        order = ["healthy", "degraded", "failed"]
        if order.index(level) > order.index(verdict):
            verdict = level

    items = counters.get("items", 0)
    valid = counters.get("valid", 0)
    rejected = counters.get("rejected", 0)
    for problem in problems:
        worse("failed" if problem.startswith(("blocked", "not_found")) else "degraded", problem)
    if not complete:
        worse("degraded", "run did not complete")
    if items == 0:
        worse("failed", "no vehicles found")
    reject_rate = rejected / items if items else 0.0
    if items and reject_rate > limits["fail_reject_rate"]:
        worse("failed", f"reject rate {reject_rate:.0%}")
    elif items and reject_rate > limits["max_reject_rate"]:
        worse("degraded", f"reject rate {reject_rate:.0%}")
    baseline = statistics.median(history_counts) if history_counts else None
    if baseline and items and baseline - valid > limits.get("min_count_drop", 0):
        ratio = valid / baseline
        if ratio < limits["fail_count_ratio"]:
            worse("failed", f"{valid} vehicles against a usual {baseline:g} ({ratio:.0%})")
        elif ratio < limits["min_count_ratio"]:
            worse("degraded", f"{valid} vehicles against a usual {baseline:g} ({ratio:.0%})")
    return {
        "verdict": verdict,
        "reasons": reasons,
        "complete": complete,
        "items": items,
        "valid": valid,
        "rejected": rejected,
        "reject_rate": round(reject_rate, 4),
        "baseline_count": baseline,
        "may_remove": verdict == "healthy" and complete,
    }
