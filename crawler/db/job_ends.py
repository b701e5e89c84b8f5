"""SQL that ends a job outside a finished attempt: cancellation (asked of a running job, of a
queued one, of one whose failed attempt its worker has not acted on yet, and once an attempt
ended), and dead letters (burial of a job out of retries, the list, replays and purges).
A job record's transitions through its attempts are crawler/db/job_queue.py's."""

from __future__ import annotations

import psycopg

from crawler.models import Job


def cancel_ended(conn: psycopg.Connection, job_id: int) -> Job | None:
    """A job whose cancel was requested and whose attempt then ended (failed, abandoned or
    never claimable) becomes cancelled: never retried, and no longer the dealership's
    active job. None when no cancel was requested or the job is running or already over."""
    row = conn.execute(
        """
        UPDATE jobs SET state = 'cancelled', phase = 'done', worker = NULL, retry_at = NULL,
               error_kind = 'cancelled', finished_at = now(), updated_at = now()
         WHERE id = %s AND cancel_requested_at IS NOT NULL AND state IN ('failed', 'queued')
        RETURNING *
        """,
        (job_id,),
    ).fetchone()
    return Job.model_validate(row) if row is not None else None


def cancel_failed(conn: psycopg.Connection, job_id: int, attempts: int) -> Job | None:
    """End cancelled a job whose attempt `attempts` failed and whose worker has not acted on
    it yet (jobs.outcome.awaiting_worker): the worker's retry, burial or hand-on, arriving
    after, finds it no longer failed and does nothing. None when the job moved on."""
    row = conn.execute(
        """
        UPDATE jobs SET state = 'cancelled', phase = 'done', worker = NULL, retry_at = NULL,
               cancel_requested_at = coalesce(cancel_requested_at, now()),
               error_kind = 'cancelled', finished_at = now(), updated_at = now()
         WHERE id = %s AND state = 'failed' AND attempts = %s
        RETURNING *
        """,
        (job_id, attempts),
    ).fetchone()
    return Job.model_validate(row) if row is not None else None


def bury(conn: psycopg.Connection, job_id: int) -> Job | None:
    """A failed job out of retries becomes a dead letter (its error history stays)."""
    row = conn.execute(
        "UPDATE jobs SET state = 'dead', updated_at = now() WHERE id = %s AND state = 'failed'"
        " RETURNING *", (job_id,)).fetchone()
    return Job.model_validate(row) if row is not None else None


def cancel_queued(conn: psycopg.Connection, job_id: int) -> Job | None:
    """Cancel a queued job: waiting for its first attempt ('cancelled before it ran'), or
    for a retry, when its error says which attempt never ran and keeps why the last one
    failed (its verdict, report and counters stay the latest attempt's, as the API says).
    Counted in /metrics as an attempt that never ran (migration 0015)."""
    row = conn.execute(
        """
        UPDATE jobs SET state = 'cancelled', phase = 'done', retry_at = NULL,
               error = CASE WHEN attempts = 0 THEN 'cancelled before it ran'
                            ELSE 'cancelled before attempt ' || attempts + 1 || ' ran'
                                 || coalesce('; attempt ' || attempts || ' failed: ' || error,
                                             '') END,
               error_kind = 'cancelled', cancel_requested_at = now(), finished_at = now(),
               updated_at = now()
         WHERE id = %s AND state = 'queued' RETURNING *
        """,
        (job_id,),
    ).fetchone()
    return Job.model_validate(row) if row is not None else None


def request_cancel(conn: psycopg.Connection, job_id: int) -> Job | None:
    row = conn.execute(
        """
        UPDATE jobs SET cancel_requested_at = coalesce(cancel_requested_at, now()),
               phase = 'cancelling', updated_at = now()
         WHERE id = %s AND state = 'running' RETURNING *
        """,
        (job_id,),
    ).fetchone()
    return Job.model_validate(row) if row is not None else None


def dead_letters(conn: psycopg.Connection, dealership_id: int | None = None,
                 limit: int = 200) -> list[Job]:
    rows = conn.execute(
        """
        SELECT * FROM jobs
         WHERE state = 'dead' AND dlq_cleared_at IS NULL
           AND (%(d)s::bigint IS NULL OR dealership_id = %(d)s)
         ORDER BY id DESC LIMIT %(n)s
        """,
        {"d": dealership_id, "n": limit},
    ).fetchall()
    return [Job.model_validate(r) for r in rows]


def mark_replayed(conn: psycopg.Connection, job_id: int, new_job_id: int) -> None:
    conn.execute(
        "UPDATE jobs SET replayed_as = %s, dlq_cleared_at = now(), updated_at = now()"
        " WHERE id = %s", (new_job_id, job_id))


def mark_older_replayed(conn: psycopg.Connection, dead: Job, new_job_id: int) -> int:
    """Clear into `new_job_id` every dead letter of `dead`'s dealership and kind older than
    it, however many; returns how many."""
    cur = conn.execute(
        """
        UPDATE jobs SET replayed_as = %(new)s, dlq_cleared_at = now(), updated_at = now()
         WHERE dealership_id = %(d)s AND kind = %(kind)s AND id < %(id)s
           AND state = 'dead' AND dlq_cleared_at IS NULL
        """,
        {"new": new_job_id, "d": dead.dealership_id, "kind": dead.kind, "id": dead.id})
    return cur.rowcount


def purge_dead(conn: psycopg.Connection, dealership_id: int) -> int:
    """Take a dealership's dead letters off the list; the job records stay as history."""
    cur = conn.execute(
        "UPDATE jobs SET dlq_cleared_at = now(), updated_at = now()"
        " WHERE dealership_id = %s AND state = 'dead' AND dlq_cleared_at IS NULL",
        (dealership_id,))
    return cur.rowcount
