"""Prometheus metrics: API latency (per process, aggregated across worker processes through
PROMETHEUS_MULTIPROC_DIR when set) and job figures read from the jobs table, so every API
process reports the same totals: jobs queued, running and dead, and (from running totals kept
by the database) finished attempts, job durations, vehicles upserted, rejects; whether
scheduled dealers' inventory is current (jobs/freshness.py: stale and never-succeeded dealers,
the oldest last success, no label per dealer); and whether a scheduler leads."""

from __future__ import annotations

import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from crawler.db import jobs_async as ajobs_db
from crawler.db import schedules as schedules_db
from jobs import freshness

API_LATENCY = Histogram(
    "forecourt_api_request_duration_seconds", "API request latency",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

WAITING = Gauge("forecourt_api_waiting_requests", "requests waiting for a job to change",
                multiprocess_mode="livesum")


class Latency:
    """ASGI middleware observing each request's duration by route template and status."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            API_LATENCY.labels(scope["method"], getattr(route, "path", "unmatched"),
                               str(status)).observe(time.perf_counter() - start)


class _Fixed:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families


_cache: dict[str, tuple[float, list]] = {}


async def job_families(pool, cache_s: float) -> list:
    hit = _cache.get("jobs")
    if hit and time.monotonic() - hit[0] < cache_s:
        return hit[1]
    async with pool.connection() as conn:
        stats = await ajobs_db.astats(conn)
        fresh = freshness.summary(freshness.judge(await dealers_db.afreshness(conn)))
        leaders = await schedules_db.aleaders(conn)
    by_state = GaugeMetricFamily("forecourt_jobs", "jobs now queued, running or dead",
                                 labels=["state"])
    for state in jobs_db.ACTIVE_STATES:
        by_state.add_metric([state], stats["states"].get(state, 0))
    dead_letters = GaugeMetricFamily("forecourt_dead_letters",
                                     "dead letters waiting for an operator (not yet replayed "
                                     "or purged)")
    dead_letters.add_metric([], stats["dead_letters"])
    finished = CounterMetricFamily("forecourt_jobs_finished",
                                   "job attempts that ended, by kind and end state",
                                   labels=["kind", "state"])
    for (kind, state), n in sorted(stats["finished"].items()):
        finished.add_metric([kind, state], n)
    durations = HistogramMetricFamily("forecourt_job_duration_seconds",
                                      "duration of finished jobs", labels=["kind"])
    for kind, row in sorted(stats["durations"].items()):
        buckets = [(str(b), row["buckets"][i]) for i, b in enumerate(stats["bounds"])]
        buckets.append(("+Inf", row["count"]))
        durations.add_metric([kind], buckets, sum_value=row["sum"])
    upserted = CounterMetricFamily("forecourt_vehicles_upserted",
                                   "vehicles written (added or changed) by jobs")
    upserted.add_metric([], stats["upserted"])
    rejects = CounterMetricFamily("forecourt_rejects", "items rejected by jobs")
    rejects.add_metric([], stats["rejected"])
    families = [by_state, dead_letters, finished, durations, upserted, rejects,
                *freshness_families(fresh), *leader_families(leaders)]
    _cache["jobs"] = (time.monotonic(), families)
    return families


def freshness_families(fresh: dict) -> list:
    """Whether dealers' inventory is current (jobs/freshness.py), without a label per
    dealer: `forecourt dealers list --stale` names them."""
    scheduled = GaugeMetricFamily("forecourt_dealers_scheduled",
                                  "dealerships with a schedule, not paused")
    scheduled.add_metric([], fresh["scheduled"])
    stale = GaugeMetricFamily(
        "forecourt_dealers_stale", "scheduled dealerships with no successful run by their "
        "second slot after their last success or resume (added: since then), plus the "
        "slots' jitter (cron), their typical run and FORECOURT_STALE_GRACE_S, by their latest "
        "finished run's state (none: no run finished)", labels=["last_run"])
    for state, n in fresh["stale"].items():
        stale.add_metric([state], n)
    never = GaugeMetricFamily("forecourt_dealers_never_succeeded",
                              "scheduled dealerships with no successful run ever")
    never.add_metric([], fresh["never_succeeded"])
    oldest = GaugeMetricFamily("forecourt_dealers_oldest_success_age_seconds",
                               "age of the oldest last successful run among scheduled "
                               "dealerships that have one")
    oldest.add_metric([], fresh["oldest_success_age_s"])
    return [scheduled, stale, never, oldest]


def leader_families(leaders: list[dict]) -> list:
    """Whether a scheduler leads, and how long its session has been silent."""
    leading = GaugeMetricFamily("forecourt_scheduler_leaders",
                                "scheduler sessions holding the leader lock (1: scheduling; "
                                "0: nobody enqueues scheduled jobs)")
    leading.add_metric([], len(leaders))
    families = [leading]
    silent = [r["silent_s"] for r in leaders if r["silent_s"] is not None]
    if silent:
        quiet = GaugeMetricFamily("forecourt_scheduler_leader_silent_seconds",
                                  "seconds since the leading scheduler's session last started "
                                  "or ended a statement (it queries every tick)")
        quiet.add_metric([], max(silent))
        families.append(quiet)
    return families


async def exposition(pool, cache_s: float) -> tuple[bytes, str]:
    """The metrics page: this process's (or all workers') API figures plus job figures."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        api = CollectorRegistry()
        multiprocess.MultiProcessCollector(api)
    else:
        from prometheus_client import REGISTRY as api
    jobs = CollectorRegistry()
    jobs.register(_Fixed(await job_families(pool, cache_s)))
    return generate_latest(api) + generate_latest(jobs), CONTENT_TYPE_LATEST
