"""SQL for job records: the source of truth for what ran, when, and how it ended."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from crawler.errors import NotFound
from crawler.models import Job


def create_or_get_active(conn: psycopg.Connection, dealership_id: int, kind: str, trigger: str,
                         params: dict[str, Any] | None = None) -> tuple[Job, bool]:
    """A new queued job, or the dealership's queued/running one. Returns (job, created).

    The partial unique index on jobs makes this safe against any number of racing callers.
    """
    while True:
        row = conn.execute(
            """
            INSERT INTO jobs (dealership_id, kind, trigger, params)
            VALUES (%s, %s, %s, %s)
            ON CONFLICT (dealership_id) WHERE state IN ('queued', 'running') DO NOTHING
            RETURNING *
            """,
            (dealership_id, kind, trigger, Jsonb(params or {})),
        ).fetchone()
        if row is not None:
            return Job.model_validate(row), True
        row = conn.execute(
            "SELECT * FROM jobs WHERE dealership_id = %s AND state IN ('queued', 'running')",
            (dealership_id,),
        ).fetchone()
        if row is not None:
            return Job.model_validate(row), False
        # The active job finished between the two statements: try again.


def get(conn: psycopg.Connection, job_id: int) -> Job:
    row = conn.execute("SELECT * FROM jobs WHERE id = %s", (job_id,)).fetchone()
    if row is None:
        raise NotFound(f"no job {job_id}", hint="see `forecourt jobs list`")
    return Job.model_validate(row)


def start(conn: psycopg.Connection, job_id: int, worker: str) -> Job:
    row = conn.execute(
        """
        UPDATE jobs SET state = 'running', attempts = attempts + 1, worker = %s,
               started_at = coalesce(started_at, now()), heartbeat_at = now(),
               updated_at = now(), phase = 'starting'
         WHERE id = %s RETURNING *
        """,
        (worker, job_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"no job {job_id}")
    return Job.model_validate(row)


def progress(conn: psycopg.Connection, job_id: int, counters: dict[str, int],
             phase: str | None = None) -> None:
    """Record live counters (and the phase) of a running job; doubles as its heartbeat."""
    conn.execute(
        """
        UPDATE jobs SET counters = %s, phase = coalesce(%s, phase),
               heartbeat_at = now(), updated_at = now()
         WHERE id = %s
        """,
        (Jsonb(counters), phase, job_id),
    )


def finish(conn: psycopg.Connection, job_id: int, state: str, *, counters: dict[str, int],
           verdict: str | None = None, report: dict[str, Any] | None = None,
           error: str | None = None, error_kind: str | None = None) -> Job:
    row = conn.execute(
        """
        UPDATE jobs SET state = %s, counters = %s, verdict = %s, report = %s,
               error = %s, error_kind = %s, phase = 'done',
               errors = CASE WHEN %s::text IS NULL THEN errors
                        ELSE errors || jsonb_build_array(jsonb_build_object(
                             'at', now(), 'attempt', attempts, 'kind', %s::text,
                             'error', %s::text)) END,
               finished_at = now(), updated_at = now()
         WHERE id = %s RETURNING *
        """,
        (state, Jsonb(counters), verdict, Jsonb(report) if report is not None else None,
         error, error_kind, error, error_kind, error, job_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"no job {job_id}")
    return Job.model_validate(row)


def list_for(conn: psycopg.Connection, dealership_id: int | None = None,
             state: str | None = None, limit: int = 50) -> list[Job]:
    rows = conn.execute(
        """
        SELECT * FROM jobs
         WHERE (%(d)s::bigint IS NULL OR dealership_id = %(d)s)
           AND (%(s)s::text IS NULL OR state = %(s)s)
         ORDER BY id DESC LIMIT %(n)s
        """,
        {"d": dealership_id, "s": state, "n": limit},
    ).fetchall()
    return [Job.model_validate(r) for r in rows]


def recent_healthy(conn: psycopg.Connection, dealership_id: int, kind: str,
                   limit: int = 5, exclude_job: int | None = None) -> list[Job]:
    """The dealership's latest healthy, complete runs of this kind: the gate's baseline."""
    rows = conn.execute(
        """
        SELECT * FROM jobs
         WHERE dealership_id = %s AND kind = %s AND state = 'succeeded' AND verdict = 'healthy'
           AND id IS DISTINCT FROM %s
         ORDER BY id DESC LIMIT %s
        """,
        (dealership_id, kind, exclude_job, limit),
    ).fetchall()
    return [Job.model_validate(r) for r in rows]


def settle_abandoned(conn: psycopg.Connection, stale_after_s: int,
                     dealership_id: int | None = None) -> list[int]:
    """Fail running jobs whose heartbeat stopped (their worker died); returns their ids."""
    rows = conn.execute(
        """
        UPDATE jobs SET state = 'failed', phase = 'done', finished_at = now(), updated_at = now(),
               error = 'worker stopped heartbeating', error_kind = 'abandoned',
               errors = errors || jsonb_build_array(jsonb_build_object(
                   'at', now(), 'attempt', attempts, 'kind', 'abandoned',
                   'error', 'worker stopped heartbeating'))
         WHERE state = 'running'
           AND coalesce(heartbeat_at, started_at, created_at) < now() - make_interval(secs => %s)
           AND (%s::bigint IS NULL OR dealership_id = %s)
        RETURNING id
        """,
        (stale_after_s, dealership_id, dealership_id),
    ).fetchall()
    return [r["id"] for r in rows]
