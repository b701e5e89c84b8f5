"""SQL for job records: the source of truth for what ran, when, and how it ended.

The queue's transitions of a job (claiming, heartbeats, retries, what the reaper settles)
are in crawler/db/job_queue.py; its cancellation and dead letters in crawler/db/job_ends.py;
the runs the delisting gate compares a run with in crawler/db/baselines.py; the HTTP API's
reads in crawler/db/jobs_async.py."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from crawler.db.baselines import GATE_BASELINE
from crawler.errors import NotFound, TakenOver
from crawler.logging import redact
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


def active(conn: psycopg.Connection, dealership_id: int) -> Job | None:
    """The dealership's queued or running job, if any (there is at most one)."""
    row = conn.execute(
        "SELECT * FROM jobs WHERE dealership_id = %s AND state IN ('queued', 'running')",
        (dealership_id,),
    ).fetchone()
    return Job.model_validate(row) if row is not None else None


def get(conn: psycopg.Connection, job_id: int) -> Job:
    row = conn.execute("SELECT * FROM jobs WHERE id = %s", (job_id,)).fetchone()
    if row is None:
        raise NotFound(f"no job {job_id}", hint="see `forecourt jobs list`")
    return Job.model_validate(row)


def id_of_public(conn: psycopg.Connection, public_id: UUID) -> int:
    """The number of the job of that public id (what the API names it by)."""
    row = conn.execute("SELECT id FROM jobs WHERE public_id = %s", (public_id,)).fetchone()
    if row is None:
        raise NotFound(f"no job {public_id}", hint="see `forecourt jobs list`")
    return row["id"]


# A new attempt's SET clause: no outcome until it ends (the previous attempt's verdict,
# report, error and error kind made a running retry look failed; its error stays in the
# `errors` history, which every attempt's end appends to).
NO_OUTCOME = "verdict = NULL, report = NULL, error = NULL, error_kind = NULL"


def start(conn: psycopg.Connection, job_id: int, worker: str) -> Job:
    row = conn.execute(
        f"""
        UPDATE jobs SET state = 'running', attempts = attempts + 1, worker = %s,
               started_at = coalesce(started_at, now()), attempt_started_at = now(),
               counters = '{{}}', {NO_OUTCOME}, heartbeat_at = now(), updated_at = now(),
               phase = 'starting'
         WHERE id = %s RETURNING *
        """,
        (worker, job_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"no job {job_id}")
    return Job.model_validate(row)


def progress(conn: psycopg.Connection, job_id: int, counters: dict[str, int],
             phase: str | None = None, attempt: tuple[int, str] | None = None) -> None:
    """Record live counters (and the phase) of a running job; doubles as its heartbeat. A
    job whose cancel was requested stays in phase 'cancelling' whatever step it reaches.
    `attempt`: the job's (attempts, state) when the caller's run began; nothing is written
    once another attempt has claimed the job, or a running one has ended (a live attempt
    taken for dead must not overwrite its successor's counters, nor a finished job's)."""
    attempts, state = attempt if attempt is not None else (None, None)
    conn.execute(
        """
        UPDATE jobs SET counters = %(c)s,
               phase = CASE WHEN cancel_requested_at IS NOT NULL THEN 'cancelling'
                            ELSE coalesce(%(p)s, phase) END,
               heartbeat_at = now(), updated_at = now()
         WHERE id = %(id)s
           AND (%(a)s::int IS NULL
                OR (attempts = %(a)s AND (%(s)s::text <> 'running' OR state = 'running')))
        """,
        {"c": Jsonb(counters), "p": phase, "id": job_id, "a": attempts, "s": state},
    )


def fence(conn: psycopg.Connection, job_id: int, attempt: tuple[int, str]) -> None:
    """In the caller's transaction, before it writes for a run of attempt `attempt` (the
    job's (attempts, state) when the run opened, as `progress` takes it): raise TakenOver
    if another attempt has claimed the job since, or a running one has ended. The job's row
    stays share-locked until the transaction ends, so a take-over (an UPDATE of the row)
    waits for the write to commit and a write after it sees the new attempt. FOR SHARE: FOR
    KEY SHARE would not hold back an UPDATE that leaves the row's keys alone. One index
    probe; a worker's heartbeat waits for the write too (a batch: well within a beat)."""
    row = conn.execute("SELECT attempts, state FROM jobs WHERE id = %s FOR SHARE",
                       (job_id,)).fetchone()
    if row is None:
        raise TakenOver(job_id, attempt[0], None, None)
    if row["attempts"] != attempt[0] or (attempt[1] == "running" and row["state"] != "running"):
        raise TakenOver(job_id, attempt[0], row["attempts"], row["state"])


def finish(conn: psycopg.Connection, job_id: int, state: str, *, counters: dict[str, int],
           verdict: str | None = None, report: dict[str, Any] | None = None,
           error: str | None = None, error_kind: str | None = None,
           only_from: str | None = None, attempt: int | None = None) -> Job:
    """End the job in `state`; with `only_from`, only while it is in that state (else the job
    as it is: a job cancelled meanwhile keeps its cancel); with `attempt`, only while that
    attempt is the one running (else the job as it is: another attempt took it over, and
    settles it)."""
    error = redact(error) if error else error  # a feed URL's credentials, a token...
    row = conn.execute(
        """
        UPDATE jobs SET state = %s, counters = %s, verdict = %s, report = %s,
               error = %s, error_kind = %s, phase = 'done',
               errors = CASE WHEN %s::text IS NULL THEN errors
                        ELSE errors || jsonb_build_array(jsonb_build_object(
                             'at', now(), 'attempt', attempts, 'kind', %s::text,
                             'error', %s::text)) END,
               finished_at = now(), updated_at = now()
         WHERE id = %s AND (%s::text IS NULL OR state = %s)
           AND (%s::int IS NULL OR (attempts = %s AND state = 'running')) RETURNING *
        """,
        (state, Jsonb(counters), verdict, Jsonb(report) if report is not None else None,
         error, error_kind, error, error_kind, error, job_id, only_from, only_from,
         attempt, attempt),
    ).fetchone()
    if row is None and (only_from is not None or attempt is not None):
        return get(conn, job_id)
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


def touch(conn: psycopg.Connection, job_id: int) -> None:
    conn.execute("UPDATE jobs SET updated_at = now() WHERE id = %s", (job_id,))


def prune(conn: psycopg.Connection, older_than_days: float, limit: int = 500) -> dict[str, int]:
    """Delete up to `limit` jobs that finished more than `older_than_days` ago, oldest first,
    with their rejects and seen sets; returns the jobs' ids and how many rejects and seen
    rows went.

    Kept whatever their age: dead letters not yet replayed or purged (an operator's to-do),
    and per dealership the jobs something still reads: its last run of each kind (`dealers
    list`, `jobs list`), its last success (the dealer UI's last run) and last success or
    partial run (the scheduler's failure streak), and its latest healthy runs of each kind
    and the runs an operator accepted (the delisting gate's baseline). Vehicles and
    vehicle_events are never touched: an event's job_id stays as the id of the run that
    made it (ids are never reused, no reader joins events to jobs, and rewriting the price
    history would cost a write per event)."""
    row = conn.execute(
        """
        WITH doomed AS (
            SELECT j.id, j.dealership_id FROM jobs j
             WHERE j.finished_at < now() - make_interval(secs => %(s)s)
               AND j.state NOT IN ('queued', 'running')
               AND NOT (j.state = 'dead' AND j.dlq_cleared_at IS NULL)
               AND j.accepted_at IS NULL
               AND j.id <> (SELECT max(k.id) FROM jobs k
                             WHERE k.dealership_id = j.dealership_id AND k.kind = j.kind
                               AND k.state NOT IN ('queued', 'running'))
               AND j.id <> coalesce((SELECT max(k.id) FROM jobs k
                                      WHERE k.dealership_id = j.dealership_id
                                        AND k.state = 'succeeded'), 0)
               AND j.id <> coalesce((SELECT max(k.id) FROM jobs k
                                      WHERE k.dealership_id = j.dealership_id
                                        AND k.state IN ('succeeded', 'partial')), 0)
               AND j.id NOT IN (SELECT k.id FROM jobs k
                                 WHERE k.dealership_id = j.dealership_id AND k.kind = j.kind
                                   AND k.state = 'succeeded' AND k.verdict = 'healthy'
                                 ORDER BY k.id DESC LIMIT %(b)s)
             ORDER BY j.finished_at LIMIT %(n)s
               FOR UPDATE OF j SKIP LOCKED
        ), rejects_gone AS (
            DELETE FROM rejects r USING doomed d
             WHERE r.dealership_id = d.dealership_id AND r.job_id = d.id RETURNING 1
        ), seen_gone AS (
            -- one probe of run_seen's key per doomed job (rarely any left: the reaper
            -- forgets an ended job's seen set), where a join read every running job's
            -- seen set, a row per unchanged vehicle, on every batch
            DELETE FROM run_seen s WHERE s.job_id = ANY(ARRAY(SELECT id FROM doomed))
            RETURNING 1
        ), jobs_gone AS (
            DELETE FROM jobs j USING doomed d WHERE j.id = d.id RETURNING j.id
        )
        SELECT coalesce((SELECT array_agg(id ORDER BY id) FROM jobs_gone), '{}') AS ids,
               (SELECT count(*) FROM rejects_gone) AS rejects,
               (SELECT count(*) FROM seen_gone) AS seen
        """,
        {"s": older_than_days * 86_400, "n": limit, "b": GATE_BASELINE},
    ).fetchone()
    return {"ids": list(row["ids"]), "rejects": int(row["rejects"]), "seen": int(row["seen"])}


ACTIVE_STATES = ("queued", "running", "dead")  # the partial index jobs_state holds these
