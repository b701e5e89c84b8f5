"""Whether each scheduled dealership's inventory is current: the product's promise, and what
on-call is paged for (/metrics) and looks at (`forecourt dealers list --stale`). Both read
`judge`, so they always agree.

A scheduled, unpaused dealership is **stale** once the run of its second scheduled slot since
its last successful run (state succeeded: complete and judged healthy) should have finished
and nothing has succeeded: an interval schedule's second slot is the success plus two
intervals, a cron schedule's the second slot after the success (in its timezone, as the
scheduler reads it), so a weekday line is not stale over a weekend and an hourly one is
within hours. One failed run is tolerated; the next slot's run must then succeed, and it is
given the time such a run takes: the scheduler's jitter on each of the two slots (a cron
line's: an interval's slots are fixed times, not jittered), the dealer's typical run (queued
to finished, the median of its last 5 successes: its own length and its usual queue) and a
grace (`stale_grace_s`) for one that is merely late (a backlog, a retry). A run that takes
its usual time no longer makes the dealer flap stale.

The promise counts from the later of the last success and when the dealership's schedule
started: when it was added, resumed after a pause, given a schedule or given another one
(migration 0014), as the scheduler itself runs it from the next slot after such a change. A
dealer an operator resumes after weeks is not stale until its first deadline from the resume
passes (its old last success is still reported, and counts in the oldest success's age);
one that never succeeded is reported as such throughout, and stale once that first deadline
passes. Failed, blocked, dead and degraded (partial: nothing delisted)
runs do not refresh it; a dealership stuck degraded becomes stale like one that fails.
Paused and unscheduled dealerships promise nothing and are left out.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from croniter import CroniterError

from crawler.config import Settings, get_settings
from crawler.models import FINAL_STATES

# The label values of forecourt_dealers_stale{last_run}: the end state of the dealership's
# latest finished run, or "none" when no run of it ever finished.
LAST_RUN_LABELS = (*FINAL_STATES, "none")


@lru_cache(maxsize=4096)
def _cron_deadline(cron: str, tz: str, start: datetime) -> datetime:
    from crawler.models import Dealership
    from jobs.scheduler import next_slot

    dealer = Dealership.model_construct(schedule_cron=cron, schedule_tz=tz or "UTC")
    return next_slot(dealer, next_slot(dealer, start))


def since(row: dict[str, Any]) -> datetime:
    """From when the promise counts: the last success (never succeeded: when the dealership
    was added), or when its schedule started (resumed, set, changed) if that is later."""
    start = row["last_success_at"] or row["created_at"]
    back = row["scheduled_since"]  # None: on this schedule since added
    return max(start, back) if back else start


def allowance_s(row: dict[str, Any], settings: Settings) -> float:
    """How long after its second slot the run of that slot may finish: the jitter the
    scheduler adds to each of the two slots (a cron line's; an interval's slots are fixed
    times, never jittered), the dealer's typical run (queued to finished) and the grace."""
    jitter = settings.schedule_jitter_s if row["schedule_cron"] else 0.0
    return 2 * jitter + (row["typical_run_s"] or 0.0) + settings.stale_grace_s


def deadline(row: dict[str, Any], settings: Settings | None = None) -> datetime | None:
    """When the dealership becomes stale if nothing succeeds meanwhile (None: a cron line
    that cannot be computed, which the scheduler reports itself)."""
    settings = settings or get_settings()
    start = since(row)
    if row["schedule_interval_s"]:
        slot = start + timedelta(seconds=2 * int(row["schedule_interval_s"]))
    else:
        try:
            slot = _cron_deadline(row["schedule_cron"], row["schedule_tz"], start)
        except (CroniterError, ValueError, KeyError):  # a zone gone from tzdata, a bad line
            return None
    return slot + timedelta(seconds=allowance_s(row, settings))


def judge(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row of crawler.db.dealers.freshness with `deadline`, `stale` (bool),
    `overdue_s`, `success_age_s` (None when it never succeeded) and `rescheduled` (it
    succeeded, but not since its schedule started: its inventory is old, yet its deadline
    counts from then) added."""
    settings = get_settings()
    judged = []
    for row in rows:
        due = deadline(row, settings)
        now = row["now"]
        success = row["last_success_at"]
        judged.append({
            **row, "deadline": due,
            "stale": due is not None and now > due,
            "overdue_s": (now - due).total_seconds() if due is not None else None,
            "success_age_s": (now - success).total_seconds() if success else None,
            "rescheduled": success is not None and row["scheduled_since"] is not None
            and success < row["scheduled_since"],
        })
    return judged


def summary(judged: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures /metrics reports: scheduled dealerships, stale ones by their latest
    finished run's state, never succeeded ones, and the oldest last success's age."""
    stale = dict.fromkeys(LAST_RUN_LABELS, 0)
    for row in judged:
        if row["stale"]:
            stale[row["last_run_state"] or "none"] += 1
    ages = [r["success_age_s"] for r in judged if r["success_age_s"] is not None]
    return {"scheduled": len(judged), "stale": stale,
            "never_succeeded": sum(r["last_success_at"] is None for r in judged),
            "oldest_success_age_s": max(ages, default=0.0)}
