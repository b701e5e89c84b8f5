"""The run report and the delisting gate.

A run ends by asking for a verdict: healthy, degraded or failed, with reasons. Only a healthy,
complete run may mark vehicles it did not see as removed. The baseline is the dealer's own
recent healthy runs, so a crawl that suddenly finds a tenth of the usual inventory, or a feed
that arrives half empty, changes nothing it did not see.

Like Spidermon's monitors, each check is a small function over the run's counters and the
baseline, and each may make the verdict worse, never better:
- item count against the median of recent healthy runs;
- field coverage (share of vehicles with a price, mileage, photos, trim...) against the same
  runs' coverage: a page template change that empties a field shows here;
- reject rate; error rate and block rate (pages that raised errors or were blocked);
- completeness and the run's own problems (a blocked or missing listing page fails it; a
  `warning:` is reported and changes nothing).
Thresholds come from DEFAULTS, overridden per dealer by `dealership.settings["gate"]`.

A lot that really shrinks must not be held degraded for ever (its baseline being healthy
runs only): `settle_after_runs` complete runs in a row degraded by their count alone, over at
least `settle_after_hours`, mean the count has settled, and the caller (pipelines.run.close)
judges the last against their own counts; see settled_count.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import statistics
from collections.abc import Callable
from typing import Any

DEFAULTS: dict[str, float] = {
    # fraction of the usual item count below which a run is degraded / failed
    "min_count_ratio": 0.7,
    "fail_count_ratio": 0.2,
    # share of items rejected above which a run is degraded / failed
    "max_reject_rate": 0.2,
    "fail_reject_rate": 0.6,
    # drops smaller than this many vehicles are ordinary sales and never degrade a run
    # (below fail_count_ratio a run fails whatever the drop)
    "min_count_drop": 5,
    # a field's coverage falling by more than this fraction of its usual share: degraded
    "max_coverage_drop": 0.3,
    # fields need this usual share, and runs this many vehicles, to be compared at all
    "min_usual_coverage": 0.5,
    "min_coverage_sample": 5,
    # ... and that share of their vehicles must have gone through the stages (a feed's
    # unchanged rows skip them: coverage of a few changed rows says little)
    "min_coverage_share": 0.5,
    # complete runs in a row degraded by their count alone after which the count has
    # settled at a new level: the last of them is judged against their own median, and
    # if that is healthy it becomes the baseline (a lot that really shrank; 0: never, an
    # operator accepts with `forecourt quality accept`)
    "settle_after_runs": 3,
    # ... and the first of them ended at least this long ago: a lot shrinks over days, and
    # a run repeated within minutes (an operator looking at a degraded crawl, a broken
    # spider on a short schedule) is the same run, not a new level
    "settle_after_hours": 24,
    # a complete run that would replace more than this share of the dealer's established
    # vehicles (active since its baseline's newest run), at least min_count_drop of them,
    # with others is degraded, never settles: another dealer's feed sent by mistake, a site
    # now showing a sister store's lot (a real turnover that large: `forecourt quality
    # accept`). A lot that shrinks is the count check's.
    "max_removed_share": 0.5,
    # share of pages that raised errors / were blocked above which a run is degraded / failed
    "max_error_rate": 0.1,
    "fail_error_rate": 0.5,
    "max_block_rate": 0.0,
    "fail_block_rate": 0.2,
}

# Fields whose coverage a run counts (counters coverage_<field>, over coverage_base).
COVERAGE_FIELDS = ("price", "mileage", "images", "trim", "model", "year", "make",
                   "exterior_color", "description", "condition", "real_vin")
ORDER = ["healthy", "degraded", "failed"]
_ERRORS = re.compile(r"^(\d+) page\(s\) raised errors")


def vehicle_count(counters: dict[str, int]) -> int:
    """The distinct vehicles a run found: its valid items less the repeats merged into them
    (a feed listing half its cars twice has the usual rows, not the usual cars)."""
    return max(0, counters.get("valid", 0) - counters.get("duplicates", 0))


def thresholds(dealer_settings: dict[str, Any] | None) -> dict[str, float]:
    """Defaults overridden by the dealer's own `gate` settings."""
    merged = dict(DEFAULTS)
    overrides = (dealer_settings or {}).get("gate") or {}
    for name, value in overrides.items() if isinstance(overrides, dict) else ():
        try:
            merged[name] = float(value)
        except (TypeError, ValueError):
            continue  # a malformed setting never breaks a run: the default stands
    return merged


def coverage(counters: dict[str, int]) -> dict[str, float]:
    """Share of the run's vehicles with each field, from its counters."""
    base = counters.get("coverage_base", 0)
    if not base:
        return {}
    return {f: round(counters.get(f"coverage_{f}", 0) / base, 4) for f in COVERAGE_FIELDS
            if f"coverage_{f}" in counters}


Verdict = Callable[[str, str], None]


def check_problems(worse: Verdict, problems: list[str], complete: bool) -> None:
    """A problem fails or degrades the run by its kind; a `warning: ...` (a sitemap the
    crawl did without) is only reported."""
    for problem in problems:
        if problem.startswith(("blocked listing", "not_found listing")):
            worse("failed", problem)
        elif problem.startswith(("blocked page", "warning: ")) or _ERRORS.match(problem):
            worse("healthy", problem)  # reported; the block and error rates judge them
        else:
            worse("degraded", problem)
    if not complete:
        worse("degraded", "run did not complete")


def check_count(worse: Verdict, valid: int, items: int, baseline: float | None,
                limits: dict[str, float]) -> None:
    if items == 0:
        worse("failed", "no vehicles found")
    if not baseline or not items:
        return
    ratio = valid / baseline
    reason = f"{valid} vehicles against a usual {baseline:g} ({ratio:.0%})"
    if ratio < limits["fail_count_ratio"]:
        # whatever the dealer's size: a feed of 1 row where 6 are usual is broken, not a
        # day of sales, and must not remove the other 5
        worse("failed", reason)
    elif ratio < limits["min_count_ratio"] and \
            baseline - valid >= limits.get("min_count_drop", 0):
        worse("degraded", reason)


def check_removals(worse: Verdict, valid: int, removing: tuple[int, int] | None,
                   limits: dict[str, float]) -> None:
    """A run that found about as many vehicles as the dealer had, but other ones: the
    established vehicles it would remove and that other vehicles it found stand in for
    (unseen ones a smaller count explains are the count check's). `removing`: (established
    vehicles the run did not see, established vehicles)."""
    if not removing or not removing[1]:
        return
    unseen, established = removing
    others = max(0, valid - (established - unseen))  # found, not established
    replaced = min(unseen, others)
    share = replaced / established
    if replaced >= limits.get("min_count_drop", 0) and share > limits["max_removed_share"]:
        worse("degraded", f"would replace {replaced} of the {established} vehicles listed "
                          f"before it with others ({share:.0%}): {unseen} unseen, "
                          f"{others} not listed before")


def check_rate(worse: Verdict, name: str, count: int, total: int, degrade: float,
               fail: float) -> float:
    rate = count / total if total else 0.0
    if count and rate > fail:
        worse("failed", f"{name} {rate:.0%} ({count} of {total})")
    elif count and rate > degrade:
        worse("degraded", f"{name} {rate:.0%} ({count} of {total})")
    return rate


def coverage_judgeable(counters: dict[str, int], limits: dict[str, float]) -> bool:
    base = counters.get("coverage_base", 0)
    return base >= limits["min_coverage_sample"] and \
        base >= limits["min_coverage_share"] * counters.get("valid", base)


def check_coverage(worse: Verdict, now: dict[str, float], usual: dict[str, float],
                   counters: dict[str, int], limits: dict[str, float],
                   usual_with: dict[str, float] | None = None) -> None:
    """A field's share falling by more than max_coverage_drop degrades the run, unless the
    number of vehicles with it did not fall as far (`usual_with`: the usual number): the lot
    grew by cars without it (arrivals not yet photographed, cars in production with a
    placeholder VIN), and the cars that had it still have it."""
    if not coverage_judgeable(counters, limits):
        return
    keep = 1 - limits["max_coverage_drop"]
    for name, share in usual.items():
        if name not in now or share < limits["min_usual_coverage"]:
            continue
        if now[name] >= share * keep:
            continue
        if usual_with and name in usual_with and \
                counters.get(f"coverage_{name}", 0) >= usual_with[name] * keep:
            continue
        worse("degraded", f"{name} coverage {now[name]:.0%} against a usual {share:.0%}")


def usual_with(history: list[dict[str, int]], limits: dict[str, float]) -> dict[str, float]:
    """Median number of vehicles with each field over the baseline runs large enough to
    count."""
    numbers: dict[str, list[int]] = {}
    for counters in history:
        if not coverage_judgeable(counters, limits):
            continue
        for name in COVERAGE_FIELDS:
            if f"coverage_{name}" in counters:
                numbers.setdefault(name, []).append(counters[f"coverage_{name}"])
    return {name: statistics.median(values) for name, values in numbers.items()}


def usual_coverage(history: list[dict[str, int]], limits: dict[str, float]
                   ) -> dict[str, float]:
    """Median share per field over the baseline runs large enough to count."""
    shares: dict[str, list[float]] = {}
    for counters in history:
        if not coverage_judgeable(counters, limits):
            continue
        for name, share in coverage(counters).items():
            shares.setdefault(name, []).append(share)
    return {name: statistics.median(values) for name, values in shares.items()}


def evaluate(counters: dict[str, int], *, complete: bool, problems: list[str],
             history_counts: list[int], limits: dict[str, float] | None = None,
             history: list[dict[str, int]] | None = None,
             removing: tuple[int, int] | None = None) -> dict[str, Any]:
    """The run report: verdict, reasons and the figures they rest on.

    `history_counts` are the vehicle counts (vehicle_count) of the baseline runs; `history`
    their full counters (for coverage), when known.
    """
    limits = {**DEFAULTS, **(limits or {})}
    reasons: list[str] = []
    verdict = "healthy"

    others: list[str] = []  # the levels of reasons other than the count's

    def worse(level: str, reason: str) -> None:
        nonlocal verdict
        reasons.append(reason)
        others.append(level)
        if ORDER.index(level) > ORDER.index(verdict):
            verdict = level

    items = counters.get("items", 0)
    valid = vehicle_count(counters)
    rejected = counters.get("rejected", 0)
    pages = counters.get("pages", 0)
    check_problems(worse, problems, complete)
    baseline = statistics.median(history_counts) if history_counts else None
    by_count: list[str] = []

    def worse_by_count(level: str, reason: str) -> None:
        by_count.append(reason)
        worse(level, reason)
        others.pop()

    check_count(worse_by_count, valid, items, baseline, limits)
    check_removals(worse, valid, removing, limits)
    reject_rate = check_rate(worse, "reject rate", rejected, items,
                             limits["max_reject_rate"], limits["fail_reject_rate"])
    errors = counters.get("errors") or sum(int(m.group(1)) for p in problems
                                           if (m := _ERRORS.match(p)))
    blocked = counters.get("pages_blocked") or sum(p.startswith("blocked page")
                                                   for p in problems)
    error_rate = check_rate(worse, "error rate", errors, max(pages, errors),
                            limits["max_error_rate"], limits["fail_error_rate"])
    block_rate = check_rate(worse, "block rate", blocked, max(pages, blocked),
                            limits["max_block_rate"], limits["fail_block_rate"])
    now = coverage(counters)
    usual = usual_coverage(history or [], limits)
    check_coverage(worse, now, usual, counters, limits, usual_with(history or [], limits))
    return {
        "verdict": verdict,
        "reasons": reasons,
        "complete": complete,
        "items": items,
        "valid": valid,
        "rejected": rejected,
        "reject_rate": round(reject_rate, 4),
        "error_rate": round(error_rate, 4),
        "block_rate": round(block_rate, 4),
        "baseline_count": baseline,
        "baseline_runs": len(history_counts),
        "removing": list(removing) if removing else None,
        "coverage": now,
        "usual_coverage": {k: round(v, 4) for k, v in usual.items()},
        "may_remove": verdict == "healthy" and complete,
        # degraded by the count check and nothing else (see settle_after_runs)
        # (reasons that leave a run healthy, such as warnings, do not count)
        "count_only": verdict == "degraded" and complete and bool(by_count)
                      and all(level == "healthy" for level in others),
    }


def settled_count(report: dict[str, Any], earlier: list[tuple[bool, int, dt.datetime]],
                  limits: dict[str, float], now: dt.datetime) -> list[int] | None:
    """The counts to judge a run's count against instead of its baseline when its count
    has settled at a new level: the run was degraded by its count alone, and so were the
    runs just before it, at least `settle_after_runs` in all, the first of them ended
    `settle_after_hours` or more before `now`. `earlier`: (count_only, valid count,
    finished_at) of the runs before it, newest first. None when it has not settled."""
    n = int(limits.get("settle_after_runs", 0))
    if n < 1 or not report.get("count_only"):
        return None
    streak = list(itertools.takewhile(lambda r: r[0], earlier))
    if len(streak) < n - 1:
        return None
    hours = limits.get("settle_after_hours", 0)
    if hours > 0 and (not streak or now - streak[-1][2] < dt.timedelta(hours=hours)):
        return None
    return [int(report["valid"]), *(valid for _, valid, _ in streak)]
