"""What follows a failed attempt: a retry, a dead letter, a hand-on, or a failed end.

Errors. Transient failures are retried here (not by Dramatiq's Retries, which is set to 0):
the job goes back to `queued` with `retry_at`, and a delayed message is sent, with
exponential backoff and jitter, until `job_max_attempts`; then the job is `dead`. An attempt
whose worker died counts too: a delivery that finds the job interrupted after its last
attempt (a redelivery's claim, a scheduled slot's take-over: jobs/execution.py) buries it
instead of running it again, deciding under the job's row lock (bury_if_spent). Permanent
failures end the job at once with their reason. If even the database is unreachable the
message fails and the job's stale heartbeat brings the reaper to it.

A crawl that turns out to need Chromium on a worker without it (a platform's fallback renders
a script-built page) is not a failure there: it goes back to `queued` and its message to the
render queue (jobs/routing.py), at once, where it waits in line for a worker that has
Chromium and an idle thread, however long they stay busy; not a retry (it does not use up
`job_max_attempts`) and not bounded. With none alive, nor seen within
`job_renderer_gone_after_s` (a worker with Chromium restarting, or re-installing it, is
waited for there too; the reaper sends the crawl back if none comes), it fails permanently,
as on a worker alone. During a rolling deploy the only live workers with Chromium may be of
the release before, which knows no render queue: the crawl is then handed on through its own
queue, with backoff, at most outcome.MAX_CHROMIUM_HANDOFFS times, as that release did. One
log line says which.
"""

from __future__ import annotations

import logging

from crawler.config import get_settings
from crawler.db import connect
from crawler.db import job_ends as ends_db
from crawler.db import job_queue as queue_db
from crawler.db import jobs as jobs_db
from crawler.models import Job
from jobs import outcome, queues, routing

log = logging.getLogger("forecourt.jobs")


def bury_if_spent(conn, job_id: int, stale_after: float,
                  message_id: str | None = None) -> Job | None:
    """In the caller's transaction, before it starts another attempt of a job whose worker
    died mid-attempt (a redelivery's claim, a scheduled slot's take-over): lock the job's
    row and, when that attempt was its last (outcome.retries_used, job_max_attempts), bury
    it as a dead letter instead. A job whose attempts kill their worker every time (out of
    memory, SIGKILL) would otherwise run for ever. Returns the dead job; None when the job
    is not interrupted or has attempts left (the caller starts one, under the lock)."""
    current = queue_db.lock_interrupted(conn, job_id, stale_after, message_id)
    if current is None or outcome.retries_used(current) < get_settings().job_max_attempts:
        return None
    buried = queue_db.bury_interrupted(conn, job_id, current.attempts, stale_after)
    if buried is not None:
        log.warning("job %s: its worker %s died during attempt %s, its last of %s (killed, "
                    "or out of memory?): dead, not run again", job_id, current.worker,
                    current.attempts, get_settings().job_max_attempts)
    return buried


def settle_after_error(job_id: int, exc: Exception, failure: str, me: str) -> Job | None:
    """Record the exception on the job (over a fresh connection: the old one may be the
    thing that broke), while this worker `me` still runs it (another attempt that took it
    over is that one's to settle: the job is returned as it is). None when even that
    fails."""
    message = (str(exc) or type(exc).__name__).splitlines()[0][:500]
    try:
        with connect() as conn:
            job = queue_db.fail_running(conn, job_id, message,
                                        f"{failure}:{type(exc).__name__}", worker=me)
            return job or jobs_db.get(conn, job_id)
    except Exception:  # noqa: BLE001 - the reaper settles it once the database is back
        log.exception("job %s could not be settled", job_id)
        return None


def retry_left_failed(conn, job: Job, failed_for_s: float = 0.0) -> Job | None:
    """Do for a job left failed what its worker would have done had it not died first:
    retry it, bury it or end it cancelled (after_failure), once that failure is
    `failed_for_s` old. The dead worker's redelivered message comes here, and the reaper
    when that message was lost too. The database decides who acts: the job's row stays
    locked until the retry is recorded and its message sent (a Redis error undoes the
    retry: the job stays failed for a later try), another reaper or a redelivery passes it
    by meanwhile, and only the failure `job` was read from is acted on. None when there
    was nothing left for us to do. A job its dealership has a newer job beside is owed no
    retry: settled superseded (queue_db.supersede), as its worker would have."""
    with conn.transaction():
        current = queue_db.lock_left_failed(conn, job.id, job.attempts, failed_for_s)
        if current is None and outcome.awaiting_worker(job) \
                and job.cancel_requested_at is None and not outcome.needs_chromium(job):
            return queue_db.supersede(conn, job.id, job.error_kind or "")
        if current is None or not outcome.awaiting_worker(current):
            return None
        return after_failure(conn, current,
                             outcome.classify_settled(current) or outcome.TRANSIENT)


def after_failure(conn, job: Job, failure: str) -> Job:
    """A failed attempt: retry it later if transient and attempts remain, else bury it if
    transient, else leave it failed (permanent)."""
    settings = get_settings()
    if job.cancel_requested_at is not None:  # cancelled while it ran: never retried
        return ends_db.cancel_ended(conn, job.id) or job
    if outcome.needs_chromium(job):
        return _hand_on(conn, job)
    if failure != outcome.TRANSIENT:
        return job
    if outcome.retries_used(job) >= settings.job_max_attempts:
        return ends_db.bury(conn, job.id) or job
    delay = outcome.backoff_s(outcome.retries_used(job), settings.job_min_backoff_s,
                              settings.job_max_backoff_s)
    queued = queue_db.requeue(conn, job.id, delay)
    if queued is None:  # moved on, or refused: the dealership has a newer active job
        return queue_db.supersede(conn, job.id, job.error_kind or "") or job
    routing.send(conn, queued, delay_s=delay)
    return queued


def _hand_on(conn, job: Job) -> Job:
    """A crawl this worker could not render (no Chromium): to the render queue, at once, while
    a live worker that has Chromium takes it; else back in line on its own queue while only
    a worker of the release before has Chromium (a rolling deploy), a bounded number of
    times; else left failed (permanent). One line either way."""
    from crawler.browser import CHROMIUM_FIX
    from jobs import renderers

    queue = routing.queue_for(job)
    render = queues.render_queue(queue)
    renderers.check()  # a worker that had Chromium and lost it leaves the render queues first
    renderer = renderers.expected(render)
    if renderer is not None:
        queued = queue_db.requeue(conn, job.id, 0)
        if queued is None:  # moved on, or the dealership has a newer active job
            return queue_db.supersede(conn, job.id, job.error_kind or "") or job
        routing.send(conn, queued, to=render)
        log.warning("job %s needs Chromium, which this worker lacks: it waits on queue %s "
                    "for a worker that has it (%s)", job.id, render, renderer)
        return queued
    older = renderers.alive(queue)  # advertised, not on the render queue: an older release
    handoffs = outcome.chromium_handoffs(job)
    if older is None:
        log.warning("job %s needs Chromium, which this worker lacks, and no live worker that "
                    "has Chromium takes queue %s: failed (%s, here or on another worker)",
                    job.id, queue, CHROMIUM_FIX)
        return _fail_for_good(conn, job)
    if not outcome.may_hand_on(job):
        log.warning("job %s needs Chromium, which this worker lacks: handed on %d times, never "
                    "taken by a worker that has it; failed (give more workers Chromium: %s)",
                    job.id, handoffs - 1, CHROMIUM_FIX)
        return _fail_for_good(conn, job)
    settings = get_settings()
    delay = outcome.backoff_s(handoffs, settings.job_min_backoff_s, settings.job_max_backoff_s)
    queued = queue_db.requeue(conn, job.id, delay)
    if queued is None:
        return queue_db.supersede(conn, job.id, job.error_kind or "") or job
    routing.send(conn, queued, delay_s=delay, to=queue)
    log.warning("job %s needs Chromium, which this worker lacks: handed on (%d of %d) to "
                "queue %s in %.1f s for a worker that has it (%s is alive; of a release "
                "without render queues)", job.id, handoffs, outcome.MAX_CHROMIUM_HANDOFFS,
                queue, delay, older)
    return queued


def _fail_for_good(conn, job: Job) -> Job:
    """A crawl not handed on ends failed as on a worker alone (error kind `permanent`): its
    NO_CHROMIUM kind would say a worker is about to hand it on (outcome.awaiting_worker), so
    followers would wait on it and a second delivery of its message would hand it on."""
    return queue_db.settle_kind(conn, job.id, outcome.NO_CHROMIUM, outcome.PERMANENT) or job
