"""Whether each scheduled dealership's inventory is current: the product's promise, and what
on-call is paged for (/metrics) and looks at (`forecourt dealers list --stale`).

A scheduled, unpaused dealership is **stale** once two of its scheduled slots have passed
since its last successful run (state succeeded: complete and judged healthy) without another
succeeding: an interval schedule's deadline is the success plus two intervals, a cron
schedule's the second slot after the success (in its timezone, as the scheduler reads it),
so a weekday line is not stale over a weekend and an hourly one is within hours. A dealership
that never succeeded counts from when it was added. Failed, blocked, dead and degraded
(partial: nothing delisted) runs do not refresh it; a dealership stuck degraded becomes
stale like one that fails. Paused and unscheduled dealerships promise nothing and are left
out.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from croniter import CroniterError

from crawler.models import FINAL_STATES

# The label values of forecourt_dealers_stale{last_run}: the end state of the dealership's
# latest finished run, or "none" when no run of it ever finished.
LAST_RUN_LABELS = (*FINAL_STATES, "none")


@lru_cache(maxsize=4096)
def _cron_deadline(cron: str, tz: str, since: datetime) -> datetime:
    from crawler.models import Dealership
    from jobs.scheduler import next_slot

    dealer = Dealership.model_construct(schedule_cron=cron, schedule_tz=tz or "UTC")
    return next_slot(dealer, next_slot(dealer, since))


def deadline(row: dict[str, Any]) -> datetime | None:
    """When the dealership becomes stale if nothing succeeds meanwhile (None: a cron line
    that cannot be computed, which the scheduler reports itself)."""
    since = row["last_success_at"] or row["created_at"]
    if row["schedule_interval_s"]:
        return since + timedelta(seconds=2 * int(row["schedule_interval_s"]))
    try:
        return _cron_deadline(row["schedule_cron"], row["schedule_tz"], since)
    except (CroniterError, ValueError, KeyError):  # a zone gone from tzdata, a bad line
        return None


def judge(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row of crawler.db.dealers.freshness with `deadline`, `stale` (bool),
    `overdue_s` and `success_age_s` (None when it never succeeded) added."""
    judged = []
    for row in rows:
        due = deadline(row)
        now = row["now"]
        judged.append({
            **row, "deadline": due,
            "stale": due is not None and now > due,
            "overdue_s": (now - due).total_seconds() if due is not None else None,
            "success_age_s": (now - row["last_success_at"]).total_seconds()
            if row["last_success_at"] else None,
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
