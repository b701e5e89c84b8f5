"""Dramatiq actors: each takes only a job id and runs one attempt of that job.

Queues. `priority` carries operator, API and retry work; `scheduled` carries the scheduler's.
Each queue has its own consumer in every worker, so a backlog of scheduled messages in Redis
never hides an operator message. Inside a worker, the priority actors have a lower Dramatiq
priority number, so a free thread always takes operator work first; and when a worker has two
or more threads, scheduled attempts may hold all but one of them, so one thread stays free for
operator work even while scheduled crawls run for many minutes. That limit is kept by the
queue consumers, not by bouncing messages: each holds only messages the process can start now
(jobs/prefetch.py: priority, its idle threads; scheduled, its free slots that are idle), so
the rest wait in Redis in the order they were queued and start first-in first-out, on
whichever worker has an idle thread first, and their job rows are not touched while they
wait (a waiting job's ETag holds still for long polls).

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

Errors. Transient failures are retried by this module (not Dramatiq's Retries, which is set to
0): the job goes back to `queued` with `retry_at`, and a delayed message is sent, with
exponential backoff and jitter, until `job_max_attempts`; then the job is `dead`. An attempt
whose worker died counts too: a delivery that finds the job interrupted after its last
attempt (a redelivery's claim, a scheduled slot's take-over) buries it instead of running
it again, deciding under the job's row lock (_bury_if_spent). Permanent
failures end the job at once with their reason. If even the database is unreachable the
message fails and the job's stale heartbeat brings the reaper to it.

A mixed fleet (jobs/queues.py). Crawls that must render pages have render queues of their
own, `priority.render` and `scheduled.render`, which only workers that have Chromium consume.
A crawl known to need Chromium before it starts (its dealer's platform renders every listing
page) is sent there while a live worker that has Chromium takes that queue, or one did within
`job_renderer_gone_after_s` (jobs/renderers.py: `expected`).
One that turns out to need it on a worker without Chromium (a platform's fallback renders a
script-built page) is not a failure there: it goes back to `queued` and its message to the
render queue, at once, where it waits in line for a worker that has Chromium and an idle
thread, however long they stay busy; not a retry (it does not use up `job_max_attempts`) and
not bounded. With none alive, nor seen within `job_renderer_gone_after_s` (a worker with
Chromium restarting, or re-installing it, is waited for there too; the reaper sends the
crawl back if none comes), it fails permanently, as on a worker alone. During a rolling
deploy the only live workers with Chromium may be of the release before, which knows no
render queue: the crawl is then handed on through its own queue, with backoff, at most
outcome.MAX_CHROMIUM_HANDOFFS times, as that release did. One log line says which.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import dramatiq

from crawler.config import get_settings
from crawler.db import connect
from crawler.db import dealers as dealers_db
from crawler.db import job_queue as queue_db
from crawler.db import jobs as jobs_db
from crawler.errors import NotFound
from crawler.models import Job
from jobs import attempt, outcome, queues
from jobs.broker import get_broker
from jobs.prefetch import LivePrefetch

log = logging.getLogger("forecourt.jobs")


class ReaperMiddleware(dramatiq.Middleware):
    """Every worker process consumes the render queues only if it has Chromium when it
    starts (jobs/queues.py), runs the reaper in a thread (see jobs/reaper.py), and another
    that says, while it has Chromium and is not stopping, which queues it renders pages from
    (jobs/renderers.py), and stops its render consumers taking messages while it has lost
    Chromium."""

    def before_worker_boot(self, broker, worker):
        from crawler import browser

        # `forecourt worker --queue` (None: every plain queue), before any consumer starts
        named = worker.consumer_whitelist
        chosen = queues.consumed(named, renders=browser.find_chromium() is not None)
        if not chosen:
            log.warning("this worker has no Chromium, and takes only render queues (%s): "
                        "it takes no job", ", ".join(sorted(named or ())))
        worker.consumer_whitelist = set(chosen) or {queues.NOTHING}

    def after_worker_boot(self, broker, worker):
        from crawler import logging as fc_logging
        from jobs import reaper, renderers

        # structured (JSON) logs with job ids, secrets redacted, in place of Dramatiq's
        # plain handler (which printed every record a second time, unredacted)
        fc_logging.configure(adopt=True)
        reaper.start_thread()
        # a worker that loses Chromium while it runs takes no new render message until it is
        # back (jobs/renderers.py, jobs/prefetch.py)
        prefetch = next((m for m in broker.middleware if isinstance(m, LivePrefetch)), None)
        renderers.start_thread([q for q in queues.ALL if q in worker.consumer_whitelist],
                               on_change=prefetch.take_render if prefetch else None)

    def before_worker_shutdown(self, broker, worker):
        from jobs import renderers

        # it takes no new message from now on, while it may finish a crawl for many minutes
        renderers.stop()


PRIORITY, SCHEDULED = queues.PRIORITY, queues.SCHEDULED
PRIORITY_RENDER, SCHEDULED_RENDER = queues.PRIORITY_RENDER, queues.SCHEDULED_RENDER
QUEUES = queues.ALL

_scheduled_slots: threading.BoundedSemaphore | None = None
_slots_lock = threading.Lock()


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


def scheduled_slot_count() -> int:
    """Scheduled attempts a worker process runs at once: all its threads but one."""
    return max(1, max(1, get_settings().worker_threads) - 1)


def _worker_threads() -> int:
    return max(1, get_settings().worker_threads)


for _middleware in (ReaperMiddleware(), LivePrefetch(_worker_threads, scheduled_slot_count)):
    if not any(isinstance(m, type(_middleware)) for m in get_broker().middleware):
        get_broker().add_middleware(_middleware)


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
    that must render pages (_needs_chromium): a worker that has it takes that over."""
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
                if not renders and stale.kind == "crawl" and _needs_chromium(conn, stale):
                    # it would only be handed to the back of the render queue after a
                    # crawl's worth of work here: left to a worker that has Chromium (its
                    # redelivered message waits on the render queue; the reaper's net)
                    continue
                with conn.transaction():
                    buried = _bury_if_spent(conn, stale.id, stale_after)
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
                    acted.append(after_failure(fresh, j, failure))

        job = run(conn, job, dealer, me, on_settled=settled)
        if job.worker != me:  # retried already, or taken over while we looked dead
            log.info("job %s moved on: %s (worker %s)", job_id, job.state, job.worker)
            return
        failure = outcome.classify_settled(job)
    except Exception as exc:  # translated here: retry or dead letter
        failure = outcome.classify_exception(exc)
        log.warning("job %s attempt %s raised %s: %s", job_id, job.attempts,
                    type(exc).__name__, exc)
        job = _settle_after_error(job_id, exc, failure, me)
        if job is None:
            raise
        if job.worker != me:  # taken over while we looked dead: the new attempt's to settle
            log.info("job %s moved on: %s (worker %s)", job_id, job.state, job.worker)
            return
    if acted:  # the settled callback decided already (requeued, buried, handed on...)
        job = acted[-1]
    elif job.state == "failed" and failure is not None:
        with connect() as fresh:
            job = after_failure(fresh, job, failure)
    log.info("job %s attempt %s ended %s", job_id, job.attempts, job.state)


def _claim(conn, job_id: int, me: str, message_id: str | None) -> Job | None:
    """Claim the job for this delivery. A redelivery (the job runs under this very message)
    can arrive before the dead worker's job heartbeat looks stale: it waits for that."""
    stale_after = get_settings().job_stale_after_s
    deadline = time.monotonic() + stale_after + 5
    while True:
        with conn.transaction():
            buried = _bury_if_spent(conn, job_id, stale_after, message_id)
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
            if retry_left_failed(conn, current) is not None:
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


def _bury_if_spent(conn, job_id: int, stale_after: float,
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


def _left_failed(job: Job, message_id: str | None) -> bool:
    """Whether `job` failed under this very message and still waits for its worker to retry
    it, bury it or end it cancelled (outcome.awaiting_worker): the worker died first. A
    worker that acted on it sent a new message (or none: it ends failed)."""
    return (job.state == "failed" and message_id is not None
            and job.message_id == message_id and outcome.awaiting_worker(job))


def _settle_after_error(job_id: int, exc: Exception, failure: str, me: str) -> Job | None:
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
        return queue_db.cancel_ended(conn, job.id) or job
    if outcome.needs_chromium(job):
        return _hand_on(conn, job)
    if failure != outcome.TRANSIENT:
        return job
    if outcome.retries_used(job) >= settings.job_max_attempts:
        return queue_db.bury(conn, job.id) or job
    delay = outcome.backoff_s(outcome.retries_used(job), settings.job_min_backoff_s,
                              settings.job_max_backoff_s)
    queued = queue_db.requeue(conn, job.id, delay)
    if queued is None:  # moved on, or refused: the dealership has a newer active job
        return queue_db.supersede(conn, job.id, job.error_kind or "") or job
    send(conn, queued, delay_s=delay)
    return queued


def _hand_on(conn, job: Job) -> Job:
    """A crawl this worker could not render (no Chromium): to the render queue, at once, while
    a live worker that has Chromium takes it; else back in line on its own queue while only
    a worker of the release before has Chromium (a rolling deploy), a bounded number of
    times; else left failed (permanent). One line either way."""
    from crawler.browser import CHROMIUM_FIX
    from jobs import renderers

    queue = queue_for(job)
    render = queues.render_queue(queue)
    renderers.check()  # a worker that had Chromium and lost it leaves the render queues first
    renderer = renderers.expected(render)
    if renderer is not None:
        queued = queue_db.requeue(conn, job.id, 0)
        if queued is None:  # moved on, or the dealership has a newer active job
            return queue_db.supersede(conn, job.id, job.error_kind or "") or job
        send(conn, queued, to=render)
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
    send(conn, queued, delay_s=delay, to=queue)
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


def queue_for(job: Job) -> str:
    """The job's own (plain) queue, as its record keeps it."""
    return job.queue or (SCHEDULED if job.trigger == "schedule" else PRIORITY)


def route(conn, job: Job) -> str:
    """The queue a message of the job goes to: the render queue beside its own when it is a
    crawl known to need Chromium (an attempt failed for want of it, or its dealer's platform
    renders every listing page) and a worker that has Chromium takes that queue, or did
    within `job_renderer_gone_after_s` (renderers.expected); else its own (where a worker
    without Chromium fails it in one line)."""
    from jobs import renderers

    queue = queue_for(job)
    if job.kind != "crawl" or not _needs_chromium(conn, job):
        return queue
    render = queues.render_queue(queue)
    return render if renderers.expected(render) is not None else queue


def _needs_chromium(conn, job: Job) -> bool:
    from spiders.registry import renders

    if outcome.chromium_handoffs(job):
        return True
    platform = job.params.get("platform")
    if platform is None:
        try:
            platform = dealers_db.get_by_id(conn, job.dealership_id).platform
        except NotFound:  # removed: its job is cancelled, and nothing claims it
            return False
    return renders(platform)


def send(conn, job: Job, delay_s: float = 0.0, same_id: bool = False,
         to: str | None = None) -> str:
    """Put a message for the job on the queue `route` picks (or `to`); returns the message
    id. The job's record keeps its own queue (a release without render queues re-sends and
    runs it there).

    The id is recorded on the job before the message is sent, and only the job's current
    message may claim it: a stale message (superseded by a retry, or left from before a
    database restore) finds a different id and does nothing. `same_id` (the reaper's
    re-send of a message that may only be waiting in a long backlog) sends a copy under the
    job's current id instead, so the original keeps its place in line: whichever copy comes
    first claims the job, and the other finds it taken."""
    queue = queue_for(job)
    target = to or route(conn, job)
    actor = _ACTORS[(job.kind, target)]
    message = actor.message_with_options(args=(job.id,), forecourt_release=RELEASE)
    if same_id and job.message_id and job.queue == queue:
        message = message.copy(message_id=job.message_id)
    queue_db.set_message(conn, job.id, queue, message.message_id, queues.is_render(target))
    actor.broker.enqueue(message, delay=int(delay_s * 1000) if delay_s > 0 else None)
    queue_db.mark_sent(conn, job.id, message.message_id)  # a crash before: the reaper sends it
    return message.message_id


def leave_render_queue(conn, job: Job, delay_s: float = 0.0) -> Job | None:
    """Send a crawl waiting on a render queue (its message went there: render_message_id)
    back to its own queue, under the same message id, once no worker with Chromium has
    taken that render queue for `job_renderer_gone_after_s` (the reaper's call): there a
    worker without Chromium fails it in one line, as with none alive when it was sent, and
    one that has Chromium (of any release) runs it; so does one that comes back to the
    render queue, taking the copy left there (whichever copy comes first claims the job).
    The database decides who sends it: None when another reaper did, or it moved on. A
    Redis error undoes it (the job waits there for a later pass)."""
    with conn.transaction():
        moved = queue_db.leave_render_queue(conn, job.id, job.message_id or "")
        if moved is None:
            return None
        send(conn, moved, delay_s=delay_s, same_id=True, to=queue_for(moved))
    return moved


# Messages across releases. Old and new workers share the queues during a rolling deploy,
# so a message one release sends may be taken by another. The job record is the truth and a
# message only names the job: every actor takes the job id first and ignores what follows
# (a later release may add optional hints, never anything a job needs), so an older worker
# runs a newer release's message instead of failing it into Redis's dead letters while the
# job waits `queued` for the reaper's re-send (job_resend_after_s). Actor names stay: a
# renamed or new actor is unknown to the workers of the release before: `unknown_actor`
# below stands in for it there and puts the message back, delayed, for a worker that knows it
# (every message names the release that sent it), up to UNKNOWN_ACTOR_MAX_TRIES times.

@dramatiq.actor(queue_name=PRIORITY, priority=0, max_retries=0)
def run_crawl_job(job_id: int, *_newer, **_newer_options) -> None:
    execute(job_id, PRIORITY)


@dramatiq.actor(queue_name=PRIORITY, priority=0, max_retries=0)
def run_feed_job(job_id: int, *_newer, **_newer_options) -> None:
    execute(job_id, PRIORITY)


@dramatiq.actor(queue_name=SCHEDULED, priority=10, max_retries=0)
def run_scheduled_crawl_job(job_id: int, *_newer, **_newer_options) -> None:
    execute(job_id, SCHEDULED)


@dramatiq.actor(queue_name=SCHEDULED, priority=10, max_retries=0)
def run_scheduled_feed_job(job_id: int, *_newer, **_newer_options) -> None:
    execute(job_id, SCHEDULED)


# Crawls that must render pages (jobs/queues.py). New actors on new queues: a worker of the
# release before consumes neither, so it never meets them (nor `unknown_actor`).
@dramatiq.actor(queue_name=PRIORITY_RENDER, priority=0, max_retries=0)
def run_render_crawl_job(job_id: int, *_newer, **_newer_options) -> None:
    execute(job_id, PRIORITY_RENDER)


@dramatiq.actor(queue_name=SCHEDULED_RENDER, priority=10, max_retries=0)
def run_scheduled_render_crawl_job(job_id: int, *_newer, **_newer_options) -> None:
    execute(job_id, SCHEDULED_RENDER)


def _release() -> str:
    from importlib import metadata

    try:
        return metadata.version("forecourt")
    except metadata.PackageNotFoundError:
        return "unknown"


RELEASE = _release()
UNKNOWN_ACTOR_DELAY_S = 30
UNKNOWN_ACTOR_MAX_TRIES = 40  # 20 minutes: longer than a rolling deploy
UNKNOWN_ACTOR_TRIES = "forecourt_unknown_actor_tries"


@dramatiq.actor(queue_name=PRIORITY, priority=0, max_retries=0,
                actor_name="forecourt_unknown_actor")
def unknown_actor(*_args, **_kwargs) -> None:
    """Runs for a message whose actor this release does not know (jobs.broker): puts it back,
    delayed, for a worker of the release that sent it, with one warning line; after
    UNKNOWN_ACTOR_MAX_TRIES it goes to the dead letters (a job it named is re-sent by the
    reaper, job_resend_after_s)."""
    from dramatiq.middleware import CurrentMessage

    message = CurrentMessage.get_current_message()
    if message is None:
        return
    tries = int(message.options.get(UNKNOWN_ACTOR_TRIES, 0)) + 1
    sender = message.options.get("forecourt_release")
    knows = f"forecourt {sender}" if sender else "a newer forecourt"
    if tries > UNKNOWN_ACTOR_MAX_TRIES:
        log.error("message %s for actor %r, which this worker (forecourt %s) does not know, "
                  "found no worker of %s in %d tries; moved to the dead letters",
                  message.message_id, message.actor_name, RELEASE, knows, tries - 1)
        message.fail()
        return
    get_broker().enqueue(message.copy(options={UNKNOWN_ACTOR_TRIES: tries}),
                         delay=UNKNOWN_ACTOR_DELAY_S * 1000)
    log.warning("message %s for actor %r, which this worker (forecourt %s) does not know: "
                "only %s knows it; put back on %s for %d s (try %d of %d) for a worker of "
                "that release", message.message_id, message.actor_name, RELEASE, knows,
                message.queue_name, UNKNOWN_ACTOR_DELAY_S, tries, UNKNOWN_ACTOR_MAX_TRIES)


get_broker().stand_in = unknown_actor

_ACTORS = {
    ("crawl", PRIORITY): run_crawl_job,
    ("feed", PRIORITY): run_feed_job,
    ("crawl", SCHEDULED): run_scheduled_crawl_job,
    ("feed", SCHEDULED): run_scheduled_feed_job,
    ("crawl", PRIORITY_RENDER): run_render_crawl_job,
    ("crawl", SCHEDULED_RENDER): run_scheduled_render_crawl_job,
}
