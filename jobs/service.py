"""What the CLI and the HTTP API do with jobs: trigger, cancel, replay, dead letters.

Every function takes an open connection (crawler.db.connect()) and returns Job records;
errors are crawler.errors types (NotFound, InvalidInput, Transient) for the edges to
translate. The jobs table is the truth; Redis only carries "run job N" messages.
"""

from __future__ import annotations

from typing import Any

import psycopg

from crawler.db import dealers as dealers_db
from crawler.db import job_ends as ends_db
from crawler.db import jobs as jobs_db
from crawler.db import schedules as schedules_db
from crawler.errors import ForecourtError, InvalidInput, NotFound, Transient
from crawler.models import FINAL_STATES, Job
from jobs import outcome, routing

KINDS = ("crawl", "feed")
TRIGGERS = ("schedule", "operator", "api", "retry", "demo")


def trigger(conn: psycopg.Connection, dealership_id: int, kind: str, trigger: str,
            params: dict[str, Any] | None = None, *,
            queue_down: str | None = None) -> tuple[Job, bool]:
    """Queue a job for the dealership, or return its queued/running one. (job, created).

    created=False: the existing active job, nothing enqueued again (safe under any race: the
    database allows one active job per dealership).

    queue_down: why Redis cannot take a message, as the caller just found (the API pings it
    first): the active job is still returned, but a new one is refused with Transient before
    it is recorded, so retries through an outage leave no failed jobs behind. Redis failing
    after such a check, before the send, still fails the recorded job (see enqueue).
    """
    job, created = record(conn, dealership_id, kind, trigger, params, queue_down=queue_down)
    if created:
        job = enqueue(conn, job)
    return job, created


def record(conn: psycopg.Connection, dealership_id: int, kind: str, trigger: str,
           params: dict[str, Any] | None = None, *,
           queue_down: str | None = None) -> tuple[Job, bool]:
    """trigger's first half: the new queued job (its message not yet sent: `enqueue` it once
    the caller's transaction, if any, has committed), or the dealership's active one."""
    if kind not in KINDS:
        raise InvalidInput(f"unknown job kind {kind!r}", hint=f"use one of {', '.join(KINDS)}")
    if trigger not in TRIGGERS:
        raise InvalidInput(f"unknown trigger {trigger!r}",
                           hint=f"use one of {', '.join(TRIGGERS)}")
    dealer = dealers_db.get_by_id(conn, dealership_id)
    params = dict(params or {})
    if kind == "crawl" and not (params.get("url") or dealer.website_url):
        raise InvalidInput(f"dealership {dealer.slug!r} has no website URL",
                           hint="set its website URL, or trigger a feed ingest")
    if kind == "feed" and not (params.get("source") or dealer.feed_url):
        raise InvalidInput(f"dealership {dealer.slug!r} has no feed URL",
                           hint="set its feed URL, or pass a source")
    if queue_down is not None:
        active = jobs_db.active(conn, dealership_id)
        if active is not None:
            return active, False
        raise Transient(f"could not queue a {kind} job: the job queue is unavailable "
                        f"({queue_down}); no job was recorded",
                        hint="check REDIS_URL and that Redis is up, then trigger again")
    return jobs_db.create_or_get_active(conn, dealership_id, kind, trigger, params)


def enqueue(conn: psycopg.Connection, job: Job) -> Job:
    """Send the job's message; a job whose message cannot be sent is failed, not left queued."""
    try:
        routing.send(conn, job)  # imports the broker: only callers that enqueue need Redis
    except Exception as exc:  # Redis unreachable, embedded Redis failing to start
        if isinstance(exc, ForecourtError) and not isinstance(exc, Transient):
            detail = str(exc)
        else:
            detail = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        jobs_db.finish(conn, job.id, "failed", counters=job.counters,
                       error=f"could not enqueue: {detail}", error_kind="enqueue",
                       only_from="queued")  # a pause may have cancelled it meanwhile
        raise Transient(f"could not queue job {job.id}: {detail}",
                        hint="check REDIS_URL and that Redis is up, then trigger again",
                        public=f"could not queue job {job.public_id}: {detail}") from exc
    return jobs_db.get(conn, job.id)


def get(conn: psycopg.Connection, job_id: int) -> Job:
    return jobs_db.get(conn, job_id)


def list_jobs(conn: psycopg.Connection, dealership_id: int | None = None,
              state: str | None = None, limit: int = 50) -> list[Job]:
    return jobs_db.list_for(conn, dealership_id, state, limit)


def cancel(conn: psycopg.Connection, job_id: int) -> Job:
    """Cancel a job. Queued: cancelled at once (its message will do nothing). Running: the
    cancel is requested (phase 'cancelling'); its worker stops the crawl child within about a
    second (a feed at its next downloaded chunk or batch) and settles it `cancelled`.
    Failed a moment ago and about to be retried by its worker (outcome.awaiting_worker; the
    API shows it running): cancelled at once. Already cancelled: returned as is."""
    job = ends_db.cancel_queued(conn, job_id)
    if job is not None:
        return job
    job = ends_db.request_cancel(conn, job_id)
    if job is not None:
        return job
    job = jobs_db.get(conn, job_id)
    if job.state == "cancelled":
        return job
    if job.state in ("queued", "running"):  # it moved between the two statements
        return cancel(conn, job_id)
    if outcome.awaiting_worker(job):  # failed only until its worker retries it: not over
        return ends_db.cancel_failed(conn, job_id, job.attempts) or cancel(conn, job_id)
    raise InvalidInput(f"job {job_id} already ended {job.state}; nothing to cancel",
                       hint="trigger a new job, or `forecourt dlq replay` a dead one",
                       public=f"job {job.public_id} already ended {job.state}; nothing to "
                              "cancel")


def pause(conn: psycopg.Connection, dealership_id: int) -> tuple[Job | None, Job | None]:
    """Stop scheduling a dealership. Its scheduled job still waiting to start (a slot taken
    before the pause, maybe behind a backlog) is cancelled, so a paused dealer is not crawled
    afterwards; an operator's queued job still runs. Returns (the scheduled job cancelled,
    the dealer's job still running, left to finish), either None."""
    dealers_db.update(conn, dealership_id, paused=True)
    job = jobs_db.active(conn, dealership_id)
    if job is not None and job.state == "queued" and job.trigger == "schedule":
        cancelled = ends_db.cancel_queued(conn, job.id)
        if cancelled is not None:
            return cancelled, None
        job = jobs_db.get(conn, job.id)  # it started meanwhile
    return None, job if job is not None and job.state == "running" else None


def resume(conn: psycopg.Connection, dealership_id: int) -> None:
    """Schedule a paused dealership again, from its next slot (missed ones skipped). One
    transaction: a scheduler tick reading in between would see the dealer unpaused with the
    overdue slot it had before the pause, and run it at once."""
    with conn.transaction():
        dealers_db.update(conn, dealership_id, paused=False)
        schedules_db.clear(conn, dealership_id)


def reschedule(conn: psycopg.Connection, dealership_id: int, cron: str | None,
               interval_s: int | None, tz: str) -> None:
    """Give a dealership its schedule; the scheduler runs it from the next slot. One
    transaction, so no tick sees the new schedule with the old one's slot."""
    with conn.transaction():
        dealers_db.update(conn, dealership_id, schedule_cron=cron,
                          schedule_interval_s=interval_s, schedule_tz=tz)
        schedules_db.clear(conn, dealership_id)


def replay(conn: psycopg.Connection, job_id: int, trigger_name: str = "retry", *,
           queue_down: str | None = None) -> Job:
    """Run a dead (or failed) job again as a new queued job with the same kind and params.

    The dead letter is cleared and points at the new job. A job already replayed is not
    replayed again (InvalidInput naming the job it was replayed as). When the dealership
    already has an active job (of either kind), nothing is queued and the dead letter stays:
    InvalidInput naming that job, to replay when it ends. `queue_down` as for `trigger`:
    Transient, nothing recorded, the dead letter kept."""
    old = jobs_db.get(conn, job_id)
    if old.state not in ("dead", "failed"):
        raise InvalidInput(f"job {job_id} is {old.state}; only dead or failed jobs replay",
                           hint="see `forecourt dlq list`",
                           public=f"job {old.public_id} is {old.state}; only dead or failed "
                                  "jobs replay")
    if old.replayed_as is not None:
        try:
            as_public = f"job {jobs_db.get(conn, old.replayed_as).public_id}"
        except NotFound:  # pruned
            as_public = "a job since deleted"
        raise InvalidInput(f"job {job_id} was already replayed as job {old.replayed_as}",
                           hint=f"see `forecourt jobs show {old.replayed_as}`",
                           public=f"job {old.public_id} was already replayed as {as_public}")
    params = {k: v for k, v in old.params.items()} | {"replay_of": old.id}
    dealer = dealers_db.get_by_id(conn, old.dealership_id)
    new, created = trigger(conn, dealer.id, old.kind, trigger_name, params,
                           queue_down=queue_down)
    if not created:
        raise InvalidInput(f"dealership {dealer.slug} has active job {new.id}; replay job "
                           f"{job_id} when it ends",
                           hint=f"follow it with `forecourt jobs show {new.id} --follow`",
                           public=f"dealership {dealer.slug} has active job {new.public_id}; "
                                  f"replay job {old.public_id} when it ends")
    ends_db.mark_replayed(conn, old.id, new.id)
    return new


def dead_letters(conn: psycopg.Connection, dealership_id: int | None = None,
                 limit: int = 200) -> list[Job]:
    """Dead jobs not yet replayed or purged, newest first; each keeps `errors`, its history."""
    return ends_db.dead_letters(conn, dealership_id, limit)


def dead_letter(conn: psycopg.Connection, job_id: int) -> Job:
    """One dead letter (a dead job, replayed or not), to inspect. A job in any other state
    is refused (InvalidInput naming the command that shows it; for a replay's new job, the
    dead letter it replays too)."""
    job = jobs_db.get(conn, job_id)
    if job.state == "dead":
        return job
    message = f"job {job_id} is {job.state}, not a dead letter"
    hint = f"see `forecourt jobs show {job_id}`; `forecourt dlq list` lists dead letters"
    replay_of = (job.params or {}).get("replay_of")
    if isinstance(replay_of, int):
        try:
            original = jobs_db.get(conn, replay_of)
        except NotFound:  # pruned
            original = None
        if original is not None:
            shows = "dlq" if original.state == "dead" else "jobs"
            noun = "dead letter" if original.state == "dead" else "job"
            message += f": it replays {noun} {replay_of}"
            hint = (f"see `forecourt jobs show {job_id}`, "
                    f"`forecourt {shows} show {replay_of}`")
    raise InvalidInput(message, hint=hint)


def replay_dead(conn: psycopg.Connection, dealership_id: int) -> list[Job]:
    """Replay a dealership's dead letters. One job runs per dealership at a time, so the
    newest dead letter is replayed and every older one of its kind is cleared into it (not
    only those a list would show); those of the other kind stay dead letters, to replay when
    it ends. Like `replay`, raises InvalidInput (and keeps every dead letter) when the
    dealership has an active job."""
    letters = dead_letters(conn, dealership_id, limit=1)
    if not letters:
        return []
    new = replay(conn, letters[0].id)
    ends_db.mark_older_replayed(conn, letters[0], new.id)
    return [new]


def purge_dead(conn: psycopg.Connection, dealership_id: int) -> int:
    """Clear a dealership's dead letters (the job records stay as history); returns how many."""
    dealers_db.get_by_id(conn, dealership_id)
    return ends_db.purge_dead(conn, dealership_id)


def is_final(job: Job) -> bool:
    return job.state in FINAL_STATES
