"""Running a message: claim its job, run one attempt of it, and settle what the attempt left.

Each actor (jobs/actors.py) calls `execute` with its job id and queue. A scheduled attempt
holds one of the worker process's scheduled slots (all its threads but one,
jobs/worker.py), so one thread stays free for operator work; its queue consumers hold no
more messages than the process can start now (jobs/prefetch.py), so a worker never reaches
a scheduled message it has no slot for.

A killed worker's scheduled job. Dramatiq puts a dead worker's unacked messages back at the
back of their queue, so its interrupted job would wait behind the whole scheduled backlog
(queued after it) while its row says `running`. Instead, a scheduled message that gets a
slot first takes over any scheduled job whose worker stopped heartbeating (on a worker
without Chromium, any but a crawl that must render pages) and runs it in that slot, then its
own job (the job moved to this message, so the late redelivery does
nothing): the interrupted job, which had its turn already, runs again next in line.

Idempotence. The job record decides: a message runs an attempt only if it can claim the job
(queued, or running with a heartbeat stale enough that its worker died: a redelivery).
A message for a finished job, or for a job another live worker runs, does nothing. Re-running
after a crash stores nothing twice: the store writes by (dealership, VIN) and content hash.

What a failed attempt leads to (a retry, a dead letter, a hand-on to a worker that has
Chromium) is jobs/failures.py's to decide.
"""

from __future__ import annotations

import logging
import threading
import time

from crawler.config import get_settings
from crawler.db import connect
from crawler.db import dealers as dealers_db
from crawler.db import job_queue as queue_db
from crawler.db import jobs as jobs_db
from crawler.errors import NotFound
from crawler.models import Job
from jobs import attempt, failures, outcome, queues, routing
from jobs.broker import get_broker
from jobs.worker import scheduled_slot_count, worker_name

log = logging.getLogger("forecourt.jobs")

SCHEDULED = queues.SCHEDULED

_scheduled_slots: threading.BoundedSemaphore | None = None
_slots_lock = threading.Lock()


def _slots() -> threading.BoundedSemaphore:
    global _scheduled_slots
    with _slots_lock:
        if _scheduled_slots is None:
            _scheduled_slots = threading.BoundedSemaphore(scheduled_slot_count())
        return _scheduled_slots


def execute(job_id: int, queue: str) -> None:
    """Run one attempt of the job if it is ours to run; retry or bury it if it failed."""
    if queues.is_render(queue) and not _renders_here(job_id, queue):
        return
    slots = _slots() if queues.plain_queue(queue) == SCHEDULED else None
    if slots is not None and not slots.acquire(blocking=False):
        # Not reached from a worker (its consumer holds no more scheduled messages than
        # slots). Otherwise put a copy back under the same message id, still valid for the
        # job, without touching the job's row.
        from dramatiq.middleware import CurrentMessage

        current = CurrentMessage.get_current_message()
        if current is not None:
            get_broker().enqueue(current.copy(), delay=1000)
        return
    from crawler import logging as fc_logging

    message_id = _current_message_id()
    try:
        if slots is not None:
            _rescue_interrupted(job_id, message_id)
        with fc_logging.bind(job_id=job_id):
            _attempt(job_id, message_id)
    finally:
        if slots is not None:
            slots.release()


def _renders_here(job_id: int, queue: str) -> bool:
    """Whether this process may take a message of a render queue: it has Chromium. It had
    when it started (or it would not consume the queue). One that lost it since (removed,
    made not executable) has just found out, or its render consumers would have taken
    nothing new (jobs/renderers.py: `check` withdraws it and stops them, logging that once);
    this message, taken before, goes back on its queue at once for a worker that has
    Chromium, the job untouched, while it may still claim its job (it is the job's current
    one, the job queued or running); a message whose job is over, or moved to another
    message, is dropped. One info line per message, a few at most. (Every message was put
    back delayed 15 s, with a warning, and taken again, for as long as the worker ran.)"""
    from dramatiq.middleware import CurrentMessage

    from jobs import renderers

    if renderers.check():
        return True
    current = CurrentMessage.get_current_message()
    if current is not None and not _may_claim(job_id, current.message_id):
        log.info("job %s on queue %s: its message %s is stale (the job is over or has "
                 "another): dropped", job_id, queue, current.message_id)
        return False
    if current is not None:
        get_broker().enqueue(current.copy())
    log.info("job %s on queue %s: put back for a worker that has Chromium (this one lost it)",
             job_id, queue)
    return False


def _may_claim(job_id: int, message_id: str) -> bool:
    """Whether a message may still claim its job: the job's current message, and the job
    queued or running (a redelivery). True when the database cannot say."""
    try:
        with connect() as conn:
            job = jobs_db.get(conn, job_id)
    except NotFound:  # deleted (pruned)
        return False
    except Exception:  # noqa: BLE001 - kept: a later delivery finds out
        return True
    return job.message_id == message_id and job.state in ("queued", "running")


def _rescue_interrupted(job_id: int, message_id: str | None) -> None:
    """Run, in this scheduled slot and before this message's own job, the scheduled jobs
    whose worker died mid-attempt: they had their turn, and their redelivered message waits
    at the back of the queue (see the module's docstring). Without Chromium, not a crawl
    that must render pages (routing.needs_chromium): a worker that has it takes that over."""
    from crawler import browser
    from crawler import logging as fc_logging

    me = worker_name()
    stale_after = get_settings().job_stale_after_s
    renders = browser.find_chromium() is not None
    while True:
        with connect() as conn:
            rescued = None
            for stale in queue_db.stale_running_on(conn, SCHEDULED, stale_after):
                if stale.id == job_id:  # our own job is claimed by its redelivery below
                    continue
                if not renders and stale.kind == "crawl" and routing.needs_chromium(conn, stale):
                    # it would only be handed to the back of the render queue after a
                    # crawl's worth of work here: left to a worker that has Chromium (its
                    # redelivered message waits on the render queue; the reaper's net)
                    continue
                with conn.transaction():
                    buried = failures.bury_if_spent(conn, stale.id, stale_after)
                    if buried is None:
                        rescued = queue_db.take_over(conn, stale.id, me, stale_after,
                                                    message_id)
                if rescued is not None:
                    break
            if rescued is None:
                return
            try:
                with fc_logging.bind(job_id=rescued.id):
                    log.warning("job %s taken over from %s (stopped heartbeating) before "
                                "job %s", rescued.id, stale.worker, job_id)
                    _run(conn, rescued, me)
            except Exception:  # noqa: BLE001 - its heartbeat brings the reaper; ours runs
                log.exception("job %s could not be settled", rescued.id)
                return


def _current_message_id() -> str | None:
    from dramatiq.middleware import CurrentMessage

    message = CurrentMessage.get_current_message()
    return message.message_id if message is not None else None


def _attempt(job_id: int, message_id: str | None) -> None:
    me = worker_name()
    with connect() as conn:
        job = _claim(conn, job_id, me, message_id)
        if job is None:
            return
        _run(conn, job, me)


def _run(conn, job: Job, me: str) -> None:
    """Run the attempt this worker has just claimed; retry or bury the job if it failed.
    Every line it logs names the job's dealership (`dealer=<slug>`, `dealership_id`)."""
    from crawler import logging as fc_logging

    try:
        slug = dealers_db.slugs(conn, [job.dealership_id]).get(job.dealership_id)
    except Exception:  # noqa: BLE001 - the attempt below meets (and settles) the same error
        slug = None
    with fc_logging.bind(dealership_id=job.dealership_id, dealer=slug):
        _run_attempt(conn, job, me)


def _run_attempt(conn, job: Job, me: str) -> None:
    job_id = job.id
    log.info("job %s attempt %s started by %s", job_id, job.attempts, me)
    acted: list[Job] = []  # what the settled callback made of a failure, if it ran
    try:
        dealer = dealers_db.get_by_id(conn, job.dealership_id)
        run = attempt.crawl if job.kind == "crawl" else attempt.feed

        def settled(j: Job) -> None:
            failure = outcome.classify_settled(j)
            if failure is not None:  # on a fresh connection: ours sat idle through the crawl
                with connect() as fresh:
                    acted.append(failures.after_failure(fresh, j, failure))

        job = run(conn, job, dealer, me, on_settled=settled)
        if job.worker != me:  # retried already, or taken over while we looked dead
            log.info("job %s moved on: %s (worker %s)", job_id, job.state, job.worker)
            return
        failure = outcome.classify_settled(job)
    except Exception as exc:  # translated here: retry or dead letter
        failure = outcome.classify_exception(exc)
        log.warning("job %s attempt %s raised %s: %s", job_id, job.attempts,
                    type(exc).__name__, exc)
        job = failures.settle_after_error(job_id, exc, failure, me)
        if job is None:
            raise
        if job.worker != me:  # taken over while we looked dead: the new attempt's to settle
            log.info("job %s moved on: %s (worker %s)", job_id, job.state, job.worker)
            return
    if acted:  # the settled callback decided already (requeued, buried, handed on...)
        job = acted[-1]
    elif job.state == "failed" and failure is not None:
        with connect() as fresh:
            job = failures.after_failure(fresh, job, failure)
    log.info("job %s attempt %s ended %s", job_id, job.attempts, job.state)


def _claim(conn, job_id: int, me: str, message_id: str | None) -> Job | None:
    """Claim the job for this delivery. A redelivery (the job runs under this very message)
    can arrive before the dead worker's job heartbeat looks stale: it waits for that."""
    stale_after = get_settings().job_stale_after_s
    deadline = time.monotonic() + stale_after + 5
    while True:
        with conn.transaction():
            buried = failures.bury_if_spent(conn, job_id, stale_after, message_id)
            job = None if buried is not None else \
                queue_db.claim(conn, job_id, me, stale_after, message_id)
        if buried is not None:
            return None
        if job is not None:
            return job
        try:
            current = jobs_db.get(conn, job_id)
        except NotFound:
            log.info("job %s no longer exists; message dropped", job_id)
            return None
        if _left_failed(current, message_id):
            # Its attempt was settled failed (by the crawl child, say) and its worker died
            # before retrying it: this redelivery does that instead of leaving it failed.
            if failures.retry_left_failed(conn, current) is not None:
                log.warning("job %s was left failed by %s (it stopped before retrying it): "
                            "settled by this redelivery", job_id, current.worker)
            return None
        redelivery = current.state == "running" and message_id is not None \
            and current.message_id == message_id
        if not redelivery or time.monotonic() > deadline:
            log.info("job %s is %s (worker %s, message %s); message %s dropped", job_id,
                     current.state, current.worker, current.message_id, message_id)
            return None
        time.sleep(0.5)


def _left_failed(job: Job, message_id: str | None) -> bool:
    """Whether `job` failed under this very message and still waits for its worker to retry
    it, bury it or end it cancelled (outcome.awaiting_worker): the worker died first. A
    worker that acted on it sent a new message (or none: it ends failed)."""
    return (job.state == "failed" and message_id is not None
            and job.message_id == message_id and outcome.awaiting_worker(job))
