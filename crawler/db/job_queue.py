"""SQL for the job queue's transitions of a job record: claiming, heartbeats, retries, and
what the reaper settles (attempts of dead workers, unsent messages, crawls waiting for a
renderer). Cancellation and dead letters are crawler/db/job_ends.py's."""

from __future__ import annotations

import psycopg

from crawler.db.jobs import NO_OUTCOME
from crawler.logging import redact
from crawler.models import Job

# Why an attempt whose worker stopped heartbeating ended, as an SQL expression over the job's
# row (one wording wherever a dead worker's attempt is settled; `%%` for statements with
# parameters).
DIED = ("worker died during attempt {} (stopped heartbeating: killed, out of memory, or cut off "
        "from the database?)")
_DIED = f"format('{DIED.replace('{}', '%%s')}', attempts)"


def settle_abandoned(conn: psycopg.Connection, stale_after_s: int,
                     dealership_id: int | None = None) -> list[int]:
    """Fail running jobs whose heartbeat stopped (their worker died); returns their ids."""
    rows = conn.execute(
        f"""
        UPDATE jobs SET state = 'failed', phase = 'done', finished_at = now(), updated_at = now(),
               error = {_DIED}, error_kind = 'abandoned',
               errors = errors || jsonb_build_array(jsonb_build_object(
                   'at', now(), 'attempt', attempts, 'kind', 'abandoned', 'error', {_DIED}))
         WHERE state = 'running'
           AND coalesce(heartbeat_at, started_at, created_at) < now() - make_interval(secs => %s)
           AND (%s::bigint IS NULL OR dealership_id = %s)
        RETURNING id
        """,
        (stale_after_s, dealership_id, dealership_id),
    ).fetchall()
    return [r["id"] for r in rows]


def set_message(conn: psycopg.Connection, job_id: int, queue: str, message_id: str,
                render: bool = False) -> None:
    """Record which queue message carries the job (the record stays the truth), before it
    is sent: not sent yet (message_sent_at NULL) until `mark_sent`, so a crash in between
    leaves a job the reaper sees unsent (stale_queued). `queue` is the job's own queue;
    `render`: the message goes to the render queue beside it (render_message_id). A re-send
    of the same message to the same queue leaves the record's updated_at (its version and
    ETag) as it was: nothing an API client sees changed."""
    conn.execute(
        """
        UPDATE jobs SET queue = %(q)s, message_id = %(m)s, message_sent_at = NULL,
               render_message_id = %(r)s,
               updated_at = CASE WHEN queue IS DISTINCT FROM %(q)s
                                   OR message_id IS DISTINCT FROM %(m)s
                                   OR render_message_id IS DISTINCT FROM %(r)s
                                 THEN now() ELSE updated_at END
         WHERE id = %(id)s
        """,
        {"q": queue, "m": message_id, "r": message_id if render else None, "id": job_id})


def waiting_on_render(conn: psycopg.Connection, queue: str, limit: int = 500) -> list[Job]:
    """Queued jobs of `queue` whose current message waits on the render queue beside it
    (set_message). Among queued jobs only (the partial index jobs_state)."""
    rows = conn.execute(
        """
        SELECT * FROM jobs
         WHERE state = 'queued' AND queue = %s AND render_message_id = message_id
         ORDER BY id LIMIT %s
        """,
        (queue, limit),
    ).fetchall()
    return [Job.model_validate(r) for r in rows]


def leave_render_queue(conn: psycopg.Connection, job_id: int, message_id: str) -> Job | None:
    """A queued job whose message `message_id` waits on a render queue no longer waits
    there (its caller sends it to its own queue, in the same transaction). None when it
    moved on meanwhile, or another transaction (another reaper) did this first."""
    row = conn.execute(
        """
        UPDATE jobs SET render_message_id = NULL, updated_at = now()
         WHERE id = %s AND state = 'queued' AND message_id = %s
           AND render_message_id = message_id
        RETURNING *
        """,
        (job_id, message_id),
    ).fetchone()
    return Job.model_validate(row) if row is not None else None


# The error history's entry for an attempt whose worker stopped heartbeating mid-run, as a
# SET clause of an UPDATE that starts the next attempt (it reads the row as it was).
_INTERRUPTED = f"""errors = CASE WHEN state = 'running' THEN errors || jsonb_build_array(
                   jsonb_build_object('at', now(), 'attempt', attempts, 'kind', 'abandoned',
                                      'error', {_DIED}, 'worker', worker))
                   ELSE errors END"""


def claim(conn: psycopg.Connection, job_id: int, worker: str, stale_after_s: float,
          message_id: str | None = None) -> Job | None:
    """Start an attempt of a queued job, or take over a running one whose worker stopped
    heartbeating (a redelivered message). None when the job is not ours to run, including
    when `message_id` is not the job's current message. `started_at` stays the job's first
    start; the attempt's own start and counters begin afresh (what /metrics counts per
    attempt, and what the API shows as the running attempt's live counters), without the
    previous attempt's verdict, report or error (kept in the error history). A running
    job's interrupted attempt goes into its error history."""
    row = conn.execute(
        f"""
        UPDATE jobs SET state = 'running', attempts = attempts + 1, worker = %s,
               started_at = coalesce(started_at, now()), attempt_started_at = now(),
               counters = '{{}}', {NO_OUTCOME}, heartbeat_at = now(), {_INTERRUPTED},
               updated_at = now(), phase = 'starting', retry_at = NULL, finished_at = NULL
         WHERE id = %s AND cancel_requested_at IS NULL
           AND (state = 'queued'
                OR (state = 'running' AND coalesce(heartbeat_at, started_at, created_at)
                                          < now() - make_interval(secs => %s)))
           AND (%s::text IS NULL OR message_id IS NULL OR message_id = %s)
        RETURNING *
        """,
        (worker, job_id, stale_after_s, message_id, message_id),
    ).fetchone()
    return Job.model_validate(row) if row is not None else None


def stale_running_on(conn: psycopg.Connection, queue: str, stale_after_s: float,
                     limit: int = 20) -> list[Job]:
    """Running jobs of `queue` whose worker stopped heartbeating `stale_after_s` ago (it
    died: their message is redelivered at the back of the queue), the longest running
    first."""
    rows = conn.execute(
        """
        SELECT * FROM jobs
         WHERE state = 'running' AND queue = %s AND cancel_requested_at IS NULL
           AND coalesce(heartbeat_at, started_at, created_at) < now() - make_interval(secs => %s)
         ORDER BY started_at, id LIMIT %s
        """,
        (queue, stale_after_s, limit),
    ).fetchall()
    return [Job.model_validate(r) for r in rows]


def take_over(conn: psycopg.Connection, job_id: int, worker: str, stale_after_s: float,
              message_id: str | None) -> Job | None:
    """Start a new attempt of a running job whose worker stopped heartbeating, carried from
    now on by `message_id` (so the dead worker's redelivered message does nothing). None
    when it is not stale any more, or was cancelled or taken over meanwhile. The
    interrupted attempt goes into the job's error history; the new one starts without an
    outcome, as a claimed one does."""
    row = conn.execute(
        f"""
        UPDATE jobs SET attempts = attempts + 1, worker = %s, message_id = %s,
               attempt_started_at = now(), counters = '{{}}', {NO_OUTCOME},
               heartbeat_at = now(),
               {_INTERRUPTED}, updated_at = now(), phase = 'starting'
         WHERE id = %s AND state = 'running' AND cancel_requested_at IS NULL
           AND coalesce(heartbeat_at, started_at, created_at) < now() - make_interval(secs => %s)
        RETURNING *
        """,
        (worker, message_id, job_id, stale_after_s),
    ).fetchone()
    return Job.model_validate(row) if row is not None else None


def lock_interrupted(conn: psycopg.Connection, job_id: int, stale_after_s: float,
                     message_id: str | None = None) -> Job | None:
    """Lock, until the caller's transaction ends, the row of a running job whose worker
    stopped heartbeating `stale_after_s` ago, which `message_id` (when given) may claim: the
    job a claim or a take-over would start another attempt of. None when there is none (it
    is queued, live, cancelled, taken over or over meanwhile: a competing transaction's
    change is waited for and read)."""
    row = conn.execute(
        """
        SELECT * FROM jobs
         WHERE id = %s AND state = 'running' AND cancel_requested_at IS NULL
           AND coalesce(heartbeat_at, started_at, created_at) < now() - make_interval(secs => %s)
           AND (%s::text IS NULL OR message_id IS NULL OR message_id = %s)
           FOR UPDATE
        """,
        (job_id, stale_after_s, message_id, message_id),
    ).fetchone()
    return Job.model_validate(row) if row is not None else None


def bury_interrupted(conn: psycopg.Connection, job_id: int, attempts: int,
                     stale_after_s: float) -> Job | None:
    """A running job whose worker died during attempt `attempts`, its last, becomes a dead
    letter instead of being run again; that attempt goes into its error history. None when
    it moved on (another attempt, a heartbeat, a cancel)."""
    error = DIED.format(attempts) + "; no attempts left"
    row = conn.execute(
        """
        UPDATE jobs SET state = 'dead', phase = 'done', finished_at = now(), updated_at = now(),
               retry_at = NULL, error = %(e)s, error_kind = 'abandoned',
               errors = errors || jsonb_build_array(jsonb_build_object(
                   'at', now(), 'attempt', attempts, 'kind', 'abandoned', 'error', %(e)s::text,
                   'worker', worker))
         WHERE id = %(id)s AND state = 'running' AND attempts = %(a)s
           AND cancel_requested_at IS NULL
           AND coalesce(heartbeat_at, started_at, created_at) < now() - make_interval(secs => %(s)s)
        RETURNING *
        """,
        {"e": error, "id": job_id, "a": attempts, "s": stale_after_s},
    ).fetchone()
    return Job.model_validate(row) if row is not None else None


def beat(conn: psycopg.Connection, job_id: int, worker: str) -> Job | None:
    """The running worker's heartbeat; None when the job is no longer this worker's."""
    row = conn.execute(
        """
        UPDATE jobs SET heartbeat_at = now()
         WHERE id = %s AND state = 'running' AND worker = %s RETURNING *
        """,
        (job_id, worker),
    ).fetchone()
    return Job.model_validate(row) if row is not None else None


def fail_running(conn: psycopg.Connection, job_id: int, error: str, error_kind: str,
                 state: str = "failed", worker: str | None = None) -> Job | None:
    """Settle a job that is still running (its attempt ended without the child settling it);
    with `worker`, only while that worker runs it (None: another took it over, or not)."""
    error = redact(error)  # errors are shown to operators and dealer UIs
    row = conn.execute(
        """
        UPDATE jobs SET state = %s, error = %s, error_kind = %s, phase = 'done',
               errors = errors || jsonb_build_array(jsonb_build_object(
                   'at', now(), 'attempt', attempts, 'kind', %s::text, 'error', %s::text)),
               finished_at = now(), updated_at = now()
         WHERE id = %s AND state = 'running' AND (%s::text IS NULL OR worker = %s) RETURNING *
        """,
        (state, error, error_kind, error_kind, error, job_id, worker, worker),
    ).fetchone()
    return Job.model_validate(row) if row is not None else None


def mark_sent(conn: psycopg.Connection, job_id: int, message_id: str) -> None:
    """Redis has the job's message `message_id` (if it is still the job's current one)."""
    conn.execute("UPDATE jobs SET message_sent_at = now() WHERE id = %s AND message_id = %s",
                 (job_id, message_id))


def requeue(conn: psycopg.Connection, job_id: int, retry_at_s: float) -> Job | None:
    """Put a failed attempt back in line for a retry after `retry_at_s` seconds. None when
    the job is no longer failed, or the dealership already has another active job."""
    try:
        with conn.transaction():  # a savepoint inside a caller's transaction (it survives)
            row = conn.execute(
                """
                UPDATE jobs SET state = 'queued', phase = 'retrying', worker = NULL,
                       retry_at = now() + make_interval(secs => %s), finished_at = NULL,
                       updated_at = now(), message_sent_at = NULL  -- its message was used
                 WHERE id = %s AND state = 'failed' AND cancel_requested_at IS NULL
                RETURNING *
                """,
                (retry_at_s, job_id),
            ).fetchone()
    except psycopg.errors.UniqueViolation:
        return None
    return Job.model_validate(row) if row is not None else None


def supersede(conn: psycopg.Connection, job_id: int, was: str) -> Job | None:
    """A failed job (error kind `was`) not retried because its dealership has a newer job:
    its retry was refused for that active job, or its worker died before retrying it and
    the newer job came meanwhile (active or over: a retry is owed nothing then). Error kind
    `superseded`, its error naming the first newer job. None when there is no such job, or
    the failed job moved on meanwhile."""
    row = conn.execute(
        """
        WITH other AS (
            SELECT o.id FROM jobs j JOIN jobs o ON o.dealership_id = j.dealership_id
             WHERE j.id = %(id)s AND o.id > j.id
             ORDER BY o.id LIMIT 1)
        UPDATE jobs SET error_kind = 'superseded', updated_at = now(),
               error = error || format('; not retried: the dealership has a newer job (job %%s)',
                                       (SELECT id FROM other))
         WHERE id = %(id)s AND state = 'failed' AND error_kind = %(was)s
           AND EXISTS (SELECT 1 FROM other)
        RETURNING *
        """,
        {"id": job_id, "was": was},
    ).fetchone()
    return Job.model_validate(row) if row is not None else None


def settle_kind(conn: psycopg.Connection, job_id: int, was: str, kind: str) -> Job | None:
    """A failed job's error kind `was`, which its worker has just decided on, becomes `kind`
    (e.g. a crawl failed for want of Chromium that was not handed on: plain permanent, so
    nobody waits for a worker to act on it). None when the job moved on meanwhile."""
    row = conn.execute(
        """
        UPDATE jobs SET error_kind = %s, updated_at = now()
         WHERE id = %s AND state = 'failed' AND error_kind = %s RETURNING *
        """,
        (kind, job_id, was),
    ).fetchone()
    return Job.model_validate(row) if row is not None else None


def stale_running(conn: psycopg.Connection, stale_after_s: float, limit: int = 500) -> list[Job]:
    """Running jobs whose worker stopped heartbeating `stale_after_s` ago."""
    rows = conn.execute(
        """
        SELECT * FROM jobs
         WHERE state = 'running'
           AND coalesce(heartbeat_at, started_at, created_at) < now() - make_interval(secs => %s)
         ORDER BY id LIMIT %s
        """,
        (stale_after_s, limit),
    ).fetchall()
    return [Job.model_validate(r) for r in rows]


def left_failed(conn: psycopg.Connection, failed_for_s: float) -> list[Job]:
    """Jobs a worker may have left failed by dying before it acted on them: a worker's
    (queued, `queue` set) attempt settled failed `failed_for_s` ago or more, the job still
    its dealership's newest (a job with a newer one is owed nothing). Which of them are owed
    a retry, a burial or a cancelled end is jobs.outcome's to say; their `report` holds only
    its `reasons`, all that says. One index probe per dealership: failures nobody is to
    act on stay failed for good, so a scan of failed jobs would grow with them."""
    rows = conn.execute(
        """
        SELECT j.* FROM dealerships d
         CROSS JOIN LATERAL (
               SELECT k.id, k.dealership_id, k.kind, k.trigger, k.state, k.phase, k.attempts,
                      k.params, k.counters, k.verdict, k.error, k.error_kind, k.errors,
                      k.worker, k.message_id, k.queue, k.retry_at, k.cancel_requested_at,
                      k.created_at, k.started_at, k.heartbeat_at, k.finished_at, k.updated_at,
                      jsonb_build_object('reasons', k.report -> 'reasons') AS report
                 FROM jobs k WHERE k.dealership_id = d.id ORDER BY k.id DESC LIMIT 1) j
         WHERE j.state = 'failed' AND j.queue IS NOT NULL AND j.attempts >= 1
           AND j.finished_at < now() - make_interval(secs => %s)
         ORDER BY j.finished_at, j.id
        """,
        (failed_for_s,),
    ).fetchall()
    return [Job.model_validate(r) for r in rows]


def lock_left_failed(conn: psycopg.Connection, job_id: int, attempts: int,
                     failed_for_s: float) -> Job | None:
    """Lock, until the caller's transaction ends, the row of a job still failed from its
    attempt `attempts`, settled `failed_for_s` ago or more, and still its dealership's newest
    job. None when it moved on (retried, buried, cancelled, run again), is younger, or
    another transaction holds it: another reaper, or a redelivery, deciding about it (they
    pass each other by rather than wait and act twice)."""
    row = conn.execute(
        """
        SELECT * FROM jobs j
         WHERE j.id = %s AND j.state = 'failed' AND j.attempts = %s
           AND j.finished_at <= now() - make_interval(secs => %s)
           AND NOT EXISTS (SELECT 1 FROM jobs k
                            WHERE k.dealership_id = j.dealership_id AND k.id > j.id)
           FOR UPDATE SKIP LOCKED
        """,
        (job_id, attempts, failed_for_s),
    ).fetchone()
    return Job.model_validate(row) if row is not None else None


# A queued job whose message seems lost (stale_queued, lock_lost).
_LOST = """state = 'queued'
           AND (greatest(coalesce(retry_at, created_at), updated_at, message_sent_at)
                    < now() - make_interval(secs => %(stale)s)
                OR (message_sent_at IS NULL
                    AND updated_at < now() - make_interval(secs => %(unsent)s)))"""


def stale_queued(conn: psycopg.Connection, stale_after_s: float, unsent_after_s: float,
                 limit: int = 500) -> list[Job]:
    """Queued jobs whose message seems lost: due for `stale_after_s` with no delivery
    (Redis flushed or restarted empty), or not sent `unsent_after_s` after the record last
    changed (a crash between the record and the send)."""
    rows = conn.execute(
        f"SELECT * FROM jobs WHERE {_LOST} ORDER BY id LIMIT %(limit)s",
        {"stale": stale_after_s, "unsent": unsent_after_s, "limit": limit},
    ).fetchall()
    return [Job.model_validate(r) for r in rows]


def lock_lost(conn: psycopg.Connection, job_id: int, message_id: str | None,
              stale_after_s: float, unsent_after_s: float) -> Job | None:
    """Lock, until the caller's transaction ends, the row of a queued job whose message
    `message_id` still seems lost (as stale_queued). None when it was sent meanwhile, moved
    on, or another transaction holds it: another reaper re-sending it (they pass each other
    by rather than wait and send it twice)."""
    row = conn.execute(
        f"""
        SELECT * FROM jobs
         WHERE id = %(id)s AND message_id IS NOT DISTINCT FROM %(message)s AND {_LOST}
           FOR UPDATE SKIP LOCKED
        """,
        {"id": job_id, "message": message_id, "stale": stale_after_s,
         "unsent": unsent_after_s},
    ).fetchone()
    return Job.model_validate(row) if row is not None else None


def abandon(conn: psycopg.Connection, job_id: int, stale_after_s: float) -> Job | None:
    """Fail a running job whose heartbeat is still stale (nobody took it over meanwhile)."""
    row = conn.execute(
        f"""
        UPDATE jobs SET state = 'failed', phase = 'done', finished_at = now(), updated_at = now(),
               error = {_DIED}, error_kind = 'abandoned',
               errors = errors || jsonb_build_array(jsonb_build_object(
                   'at', now(), 'attempt', attempts, 'kind', 'abandoned', 'error', {_DIED},
                   'worker', worker))
         WHERE id = %s AND state = 'running'
           AND coalesce(heartbeat_at, started_at, created_at) < now() - make_interval(secs => %s)
        RETURNING *
        """,
        (job_id, stale_after_s),
    ).fetchone()
    return Job.model_validate(row) if row is not None else None
