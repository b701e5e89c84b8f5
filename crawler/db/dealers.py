"""SQL for dealerships."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from crawler.errors import AlreadyExists, NotFound
from crawler.models import Dealership

_COLUMNS = ("slug", "name", "website_url", "platform", "feed_url", "feed_format", "feed_mapping",
            "schedule_cron", "schedule_tz", "schedule_interval_s", "paused", "settings",
            "webhook_url")
_JSON = {"feed_mapping", "settings"}


def _adapt(field: str, value: Any) -> Any:
    return Jsonb(value) if field in _JSON and value is not None else value


def create(conn: psycopg.Connection, **fields: Any) -> Dealership:
    unknown = set(fields) - set(_COLUMNS)
    if unknown:
        raise ValueError(f"unknown dealership fields: {sorted(unknown)}")
    names = list(fields)
    cols = ", ".join(names)
    marks = ", ".join(f"%({n})s" for n in names)
    params = {n: _adapt(n, v) for n, v in fields.items()}
    try:
        row = conn.execute(
            f"INSERT INTO dealerships ({cols}) VALUES ({marks}) RETURNING *", params
        ).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise _taken(fields.get("slug")) from exc
    return Dealership.model_validate(row)


def _taken(slug: str | None) -> AlreadyExists:
    return AlreadyExists(f"dealership {slug!r} already exists",
                         hint="choose another slug, or change that dealer with "
                              f"`forecourt dealers set {slug}`")


def check_free(conn: psycopg.Connection, slug: str) -> None:
    """Raise AlreadyExists when a dealership has this slug (before work a new dealer needs,
    such as fetching its site; `create` still refuses one added meanwhile)."""
    if conn.execute("SELECT 1 FROM dealerships WHERE slug = %s", (slug,)).fetchone():
        raise _taken(slug)


def update(conn: psycopg.Connection, dealership_id: int, **fields: Any) -> Dealership:
    unknown = set(fields) - set(_COLUMNS)
    if unknown:
        raise ValueError(f"unknown dealership fields: {sorted(unknown)}")
    sets = ", ".join(f"{n} = %({n})s" for n in fields)
    params = {n: _adapt(n, v) for n, v in fields.items()} | {"id": dealership_id}
    row = conn.execute(
        f"UPDATE dealerships SET {sets}, updated_at = now() WHERE id = %(id)s RETURNING *", params
    ).fetchone()
    if row is None:
        raise NotFound(f"no dealership with id {dealership_id}")
    return Dealership.model_validate(row)


def get(conn: psycopg.Connection, slug: str) -> Dealership:
    row = conn.execute("SELECT * FROM dealerships WHERE slug = %s", (slug,)).fetchone()
    if row is None:
        raise NotFound(f"no dealership {slug!r}",
                       hint="see `forecourt dealers list`, or add it with `forecourt dealers add`")
    return Dealership.model_validate(row)


def get_by_id(conn: psycopg.Connection, dealership_id: int) -> Dealership:
    row = conn.execute("SELECT * FROM dealerships WHERE id = %s", (dealership_id,)).fetchone()
    if row is None:
        raise NotFound(f"no dealership with id {dealership_id}")
    return Dealership.model_validate(row)


def list_all(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Dealerships with their active vehicle counts and last job, by slug."""
    return conn.execute(
        """
        SELECT d.*,
               (SELECT count(*) FROM vehicles v
                 WHERE v.dealership_id = d.id AND v.status = 'active') AS active_vehicles,
               (SELECT j.state FROM jobs j WHERE j.dealership_id = d.id
                 ORDER BY j.id DESC LIMIT 1) AS last_job_state
          FROM dealerships d ORDER BY d.slug
        """
    ).fetchall()


def slugs(conn: psycopg.Connection, ids: Collection[int]) -> dict[int, str]:
    """The slugs of these dealerships, by id (unknown ids left out): for tables of jobs,
    which list_all's vehicle counts (a count of every active vehicle, 0.4 s at 3M) would
    only slow down."""
    rows = conn.execute("SELECT id, slug FROM dealerships WHERE id = ANY(%s)",
                        (list(ids),)).fetchall()
    return {r["id"]: r["slug"] for r in rows}


def stored_summary(conn: psycopg.Connection, slugs: list[str]) -> list[dict[str, Any]]:
    """Per dealership: active and removed vehicles, rejects of its latest run, mean quality,
    events."""
    return conn.execute(
        """
        SELECT d.slug,
               count(v.id) FILTER (WHERE v.status = 'active') AS active,
               count(v.id) FILTER (WHERE v.status = 'removed') AS removed,
               (SELECT count(*) FROM rejects r WHERE r.dealership_id = d.id
                   AND r.job_id = (SELECT max(j.id) FROM jobs j
                                    WHERE j.dealership_id = d.id)) AS rejects,
               avg(v.quality_score) FILTER (WHERE v.status = 'active') AS avg_quality,
               (SELECT count(*) FROM vehicle_events e WHERE e.dealership_id = d.id) AS events
          FROM dealerships d LEFT JOIN vehicles v ON v.dealership_id = d.id
         WHERE d.slug = ANY(%s)
         GROUP BY d.id, d.slug ORDER BY d.slug
        """,
        (slugs,),
    ).fetchall()


# Async reads for the HTTP API (psycopg AsyncConnection with dict rows).

async def aget(conn: psycopg.AsyncConnection, slug: str) -> Dealership | None:
    cur = await conn.execute("SELECT * FROM dealerships WHERE slug = %s", (slug,))
    row = await cur.fetchone()
    return None if row is None else Dealership.model_validate(row)


async def ainventory(conn: psycopg.AsyncConnection, dealership_id: int) -> dict[str, Any]:
    """Active and removed vehicles, quality figures of the active ones, and the last
    successful run with its rejects, in one round trip."""
    cur = await conn.execute(
        """
        WITH v AS (
            SELECT count(*) FILTER (WHERE status = 'active') AS active_vehicles,
                   count(*) FILTER (WHERE status = 'removed') AS removed_vehicles,
                   avg(quality_score) FILTER (WHERE status = 'active') AS avg_quality_score,
                   min(quality_score) FILTER (WHERE status = 'active') AS min_quality_score,
                   count(*) FILTER (WHERE status = 'active' AND cardinality(quality_flags) > 0)
                       AS flagged_vehicles,
                   count(*) FILTER (WHERE status = 'active' AND vin_placeholder)
                       AS placeholder_vins
              FROM vehicles WHERE dealership_id = %(d)s
        ), last_ok AS (
            SELECT id, public_id, kind, finished_at, verdict, counters FROM jobs
             WHERE dealership_id = %(d)s AND state = 'succeeded'
             ORDER BY id DESC LIMIT 1
        )
        SELECT v.*, l.id AS last_job_id, l.public_id AS last_job_public_id,
               l.kind AS last_job_kind,
               l.finished_at AS last_job_finished_at, l.verdict AS last_job_verdict,
               l.counters AS last_job_counters,
               (SELECT count(*) FROM rejects r
                 WHERE r.dealership_id = %(d)s AND r.job_id = l.id) AS last_job_rejects
          FROM v LEFT JOIN last_ok l ON true
        """,
        {"d": dealership_id},
    )
    return await cur.fetchone()


# Each scheduled, unpaused dealership with what says whether its inventory is current: when
# its schedule started (resumed, set or changed: migration 0014; NULL: since added), its
# last successful run, how long its last 5 successes took from queued to finished (the
# median: one backlog does not move it; a record whose times disagree counts as 0), its
# latest finished run, and the newest error since that success (a failed or degraded run,
# an attempt waiting for its retry, or, while the retry runs, the failed attempt's error
# from the job's history: a new attempt starts without an error). Four probes per
# dealership on the jobs indexes (jobs_dealer_state_id twice, then jobs_dealer_created read
# newest first, stopping at the first match), so its cost does not grow with the jobs table.
_FRESHNESS = """
    SELECT d.id, d.slug, d.schedule_cron, d.schedule_tz, d.schedule_interval_s, d.created_at,
           d.scheduled_since,
           ok.id AS success_job_id, ok.finished_at AS last_success_at,
           usual.run_s AS typical_run_s,
           fin.id AS last_run_id, fin.state AS last_run_state, fin.finished_at AS last_run_at,
           err.id AS error_job_id, err.error AS last_error, now() AS now
      FROM dealerships d
      LEFT JOIN LATERAL (SELECT j.id, j.finished_at FROM jobs j
                          WHERE j.dealership_id = d.id AND j.state = 'succeeded'
                          ORDER BY j.id DESC LIMIT 1) ok ON true
      LEFT JOIN LATERAL (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY greatest(
                                  extract(epoch FROM r.finished_at - r.created_at), 0)::float8)
                                  AS run_s
                           FROM (SELECT j.created_at, j.finished_at FROM jobs j
                                  WHERE j.dealership_id = d.id AND j.state = 'succeeded'
                                  ORDER BY j.id DESC LIMIT 5) r) usual ON true
      LEFT JOIN LATERAL (SELECT j.id, j.state, j.finished_at FROM jobs j
                          WHERE j.dealership_id = d.id AND j.finished_at IS NOT NULL
                          ORDER BY j.id DESC LIMIT 1) fin ON true
      LEFT JOIN LATERAL (SELECT j.id, coalesce(j.error, j.errors -> -1 ->> 'error') AS error
                           FROM jobs j
                          WHERE j.dealership_id = d.id AND j.id > coalesce(ok.id, 0)
                            AND (j.error IS NOT NULL OR j.errors <> '[]'::jsonb)
                          ORDER BY j.id DESC LIMIT 1) err ON true
     WHERE NOT d.paused AND (d.schedule_cron IS NOT NULL OR d.schedule_interval_s IS NOT NULL)
     ORDER BY d.slug
"""


def freshness(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Scheduled, unpaused dealerships with when their schedule started, their last success,
    typical run time, latest finished run and newest error since (see jobs.freshness), by
    slug; `now` is the database's."""
    return conn.execute(_FRESHNESS).fetchall()


async def afreshness(conn: psycopg.AsyncConnection) -> list[dict[str, Any]]:
    cur = await conn.execute(_FRESHNESS)
    return await cur.fetchall()
