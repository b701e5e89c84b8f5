"""Async reads of job records for the HTTP API (psycopg AsyncConnection with dict rows)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

from crawler.models import Job

# A job with its dealership's slug and the public id of the job it was replayed as.
_WITH_SLUG = (
    "SELECT j.*, d.slug AS dealership_slug,"
    " (SELECT r.public_id FROM jobs r WHERE r.id = j.replayed_as) AS replayed_as_public_id"
    " FROM jobs j JOIN dealerships d ON d.id = j.dealership_id")


async def aget_with_slug(conn: psycopg.AsyncConnection, job_id: int) -> tuple[Job, str] | None:
    """A job and its dealership's slug, or None."""
    cur = await conn.execute(_WITH_SLUG + " WHERE j.id = %s", (job_id,))
    row = await cur.fetchone()
    return None if row is None else (Job.model_validate(row), row["dealership_slug"])


async def aget_public_with_slug(conn: psycopg.AsyncConnection,
                                public_id: UUID) -> tuple[Job, str] | None:
    """The job of that public id and its dealership's slug, or None."""
    cur = await conn.execute(_WITH_SLUG + " WHERE j.public_id = %s", (public_id,))
    row = await cur.fetchone()
    return None if row is None else (Job.model_validate(row), row["dealership_slug"])


async def aid_of(conn: psycopg.AsyncConnection, dealership_id: int,
                 public_id: UUID) -> int | None:
    """The number of the dealership's job of that public id, or None (no such job, or
    another dealership's)."""
    cur = await conn.execute("SELECT id FROM jobs WHERE public_id = %s AND dealership_id = %s",
                             (public_id, dealership_id))
    row = await cur.fetchone()
    return None if row is None else row["id"]


async def aget_many_with_slug(conn: psycopg.AsyncConnection,
                              job_ids: list[int]) -> dict[int, tuple[Job, str]]:
    """Several jobs with their dealerships' slugs, by id (missing ids are left out)."""
    cur = await conn.execute(_WITH_SLUG + " WHERE j.id = ANY(%s)", (job_ids,))
    return {r["id"]: (Job.model_validate(r), r["dealership_slug"])
            for r in await cur.fetchall()}


async def alist_page(conn: psycopg.AsyncConnection, dealership_id: int, *,
                     state: str | None = None, kind: str | None = None,
                     before_id: int | None = None, limit: int = 20) -> list[Job]:
    """A dealership's jobs newest first, with id < before_id (keyset pagination). Lists
    leave out the large columns (params, report, errors)."""
    cur = await conn.execute(
        """
        SELECT j.id, j.public_id, j.dealership_id, j.kind, j.trigger, j.state, j.phase,
               j.attempts, j.counters, j.verdict, j.error, j.error_kind, j.worker,
               j.message_id, j.queue, j.render_message_id, j.retry_at,
               j.cancel_requested_at, j.replayed_as, j.created_at, j.started_at,
               j.heartbeat_at, j.finished_at, j.updated_at,
               (SELECT r.public_id FROM jobs r WHERE r.id = j.replayed_as)
                   AS replayed_as_public_id
          FROM jobs j
         WHERE j.dealership_id = %(d)s
           AND (%(s)s::text IS NULL OR j.state = %(s)s)
           AND (%(k)s::text IS NULL OR j.kind = %(k)s)
           AND (%(b)s::bigint IS NULL OR j.id < %(b)s)
         ORDER BY j.id DESC LIMIT %(n)s
        """,
        {"d": dealership_id, "s": state, "k": kind, "b": before_id, "n": limit},
    )
    return [Job.model_validate(r) for r in await cur.fetchall()]


async def astats(conn: psycopg.AsyncConnection) -> dict[str, Any]:
    """Figures for metrics, none from a scan of the jobs table: jobs now queued, running or
    dead (through the partial index on those states); dead letters not yet replayed or
    purged (the dead-letter list's partial index); and, from the running totals that a
    trigger keeps (migration 0009), finished attempts per kind and end state, their duration
    histogram per kind (cumulative counts at each bound, count and sum), vehicles upserted
    and items rejected."""
    cur = await conn.execute(
        "SELECT state, count(*) AS n FROM jobs WHERE state IN ('queued', 'running', 'dead')"
        " GROUP BY state")
    states = {r["state"]: r["n"] for r in await cur.fetchall()}
    cur = await conn.execute(  # through the dead-letter list's partial index
        "SELECT count(*) AS n FROM jobs WHERE state = 'dead' AND dlq_cleared_at IS NULL")
    dead_letters = (await cur.fetchone())["n"]
    cur = await conn.execute("SELECT job_duration_bounds() AS bounds")
    bounds = [float(b) for b in (await cur.fetchone())["bounds"]]
    cur = await conn.execute("SELECT * FROM job_totals")
    finished: dict[tuple[str, str], int] = {}
    durations: dict[str, dict[str, Any]] = {}
    upserted = rejected = 0
    for r in await cur.fetchall():
        finished[(r["kind"], r["state"])] = finished.get((r["kind"], r["state"]), 0) \
            + r["finished"]
        upserted += r["upserted"]
        rejected += r["rejected"]
        if r["le"] != r["le"]:  # NaN: never started, no duration
            continue
        kind = durations.setdefault(r["kind"], {"count": 0, "sum": 0.0,
                                                "buckets": [0] * len(bounds)})
        kind["count"] += r["finished"]
        kind["sum"] += r["duration_sum"]
        for i, bound in enumerate(bounds):
            if r["le"] <= bound:
                kind["buckets"][i] += r["finished"]
    return {"states": states, "finished": finished, "durations": durations,
            "bounds": bounds, "upserted": upserted, "rejected": rejected,
            "dead_letters": dead_letters}
