"""The reaper: no job is left "running" forever, and no queued job waits on a lost message.

A running job whose worker stopped heartbeating is normally taken over by its redelivered
message (Dramatiq redelivers a dead worker's messages after the broker heartbeat timeout,
~10 s, and the new delivery claims the job once its record heartbeat is `job_stale_after_s`
old). The reaper is the safety net for when that did not happen (the message itself was
lost, the worker died while the database was down): after `job_reap_after_s` it settles the
attempt as abandoned and retries it with backoff, or makes it a dead letter after the last
attempt. Queued jobs due long ago whose message seems lost are sent again under the same
message id: if the first is only waiting in a long backlog it keeps its place in line (a
new id would invalidate it and send the job to the back, hour after hour), and only one
delivery can claim the job. A reaper re-sends it holding the job's row, and only while it
still seems lost, so reapers whose passes overlap send it once, not once each.

A worker that dies after its attempt was settled failed (by the crawl child, the feed loop)
but before it retried, buried or cancelled the job leaves it `failed`; its redelivered
message acts for it, and the reaper does when that message was lost too (Redis restarted
without persistence): once the failure is `job_reap_after_s` old (a live worker acts within
a heartbeat or two, a redelivery within the broker heartbeat), through the same function
as the redelivery (jobs.failures.retry_left_failed), which lets the database decide who acts.

A crawl waiting on a render queue (jobs/queues.py) for a worker with Chromium waits there
as long as one is alive, however busy. When the last one stopped or died, it waited on until
the re-send of lost messages, an hour later, before it failed. It is sent back to its own
queue (jobs.routing.leave_render_queue) once no worker with Chromium has taken that render
queue for `job_renderer_gone_after_s` (jobs/renderers.py: `gone`, one Redis key per render
queue, not a scan of its messages), where a worker without Chromium fails it in one line;
long enough that a restart of the workers with Chromium fails none. The job records which
message went to a render queue (`render_message_id`), so only those are read, among the
queued jobs, and only one reaper sends each back.

It also prunes finished jobs past their retention (jobs/retention.py), now and then.

Runs in the scheduler's leader on each tick and in every worker process (a thread), so
either alone is enough. Any number may run: every change is a conditional update (a job
left failed is decided, and a lost message re-sent, under its row's lock).
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg
from redis.exceptions import RedisError

from crawler import logging as fc_logging
from crawler.config import get_settings
from crawler.db import connect
from crawler.db import job_ends as ends_db
from crawler.db import job_queue as queue_db
from crawler.db import schedules as schedules_db
from crawler.db import settling as settling_db
from jobs import failures, outcome, queues, renderers, retention, routing

log = logging.getLogger("forecourt.reaper")


_quiet_until = [0.0]  # when the next "could not re-send" line may be logged
# A queued job whose message is still not sent this long after its record changed was left
# by a process that died between the two (a send takes milliseconds, or fails within
# jobs.broker.REDIS_TIMEOUT_S): it is sent by the reaper.
UNSENT_AFTER_S = 30.0
_DONE = {"queued": "requeued", "dead": "dead", "cancelled": "cancelled"}  # reap()'s lists


def reap(conn: psycopg.Connection) -> dict[str, list[int]]:
    """One pass. Returns the ids it requeued, buried, re-sent and cancelled, the crawls it
    sent back from a render queue whose workers with Chromium are gone ("unrendered"), the
    jobs whose leftover seen sets it dropped ("forgotten"), and the old finished jobs it
    deleted ("pruned", see jobs/retention.py)."""
    settings = get_settings()
    done: dict[str, list[int]] = {"requeued": [], "dead": [], "resent": [], "cancelled": [],
                                  "unrendered": [], "forgotten": []}
    for stale in queue_db.stale_running(conn, settings.job_reap_after_s):
        job = queue_db.abandon(conn, stale.id, settings.job_reap_after_s)
        if job is None:
            continue
        job = failures.after_failure(conn, job, outcome.TRANSIENT)
        done[_DONE.get(job.state, "requeued")].append(job.id)
        with fc_logging.bind(job_id=job.id, dealership_id=job.dealership_id):
            log.warning("job %s abandoned by %s: %s", job.id, stale.worker, job.state)
    for left in queue_db.left_failed(conn, settings.job_reap_after_s):
        if not outcome.owed_by_its_worker(left):
            continue
        try:
            job = failures.retry_left_failed(conn, left, settings.job_reap_after_s)
        except RedisError as exc:  # undone: the job stays failed for a later pass
            _redis_away(f"retry job {left.id}, left failed,", exc)
            break
        if job is None or job.state not in _DONE:  # another reaper acted, or it moved on
            continue
        done[_DONE[job.state]].append(job.id)
        with fc_logging.bind(job_id=job.id, dealership_id=job.dealership_id):
            log.warning("job %s was left failed by %s, which stopped before retrying it, "
                        "and no redelivery came: %s by the reaper", job.id, left.worker,
                        job.state)
    for lost in queue_db.stale_queued(conn, settings.job_resend_after_s, UNSENT_AFTER_S):
        if lost.cancel_requested_at is not None:  # no message may claim it: settle it
            if ends_db.cancel_ended(conn, lost.id) is not None:
                done["cancelled"].append(lost.id)
            continue
        try:
            resent = resend_lost(conn, lost)
        except RedisError as exc:  # Redis away: re-sent on a later pass, once it is back
            _redis_away(f"re-send lost job {lost.id}", exc)
            break
        if resent is not None:
            done["resent"].append(lost.id)
    try:
        done["unrendered"] = _leave_render_queues(conn, settings.job_renderer_gone_after_s)
    except RedisError as exc:  # undone: they wait there for a later pass
        _redis_away("send crawls back from render queues", exc)
    # a job that ended without settling its run (killed, buried) left its seen set behind
    done["forgotten"] = settling_db.forget_seen_of_ended(conn, settings.job_reap_after_s)
    pruned = retention.due_prune(conn)  # old finished jobs (every PRUNE_EVERY_S at most)
    done["pruned"] = pruned["ids"] if pruned else []
    return done


def resend_lost(conn: psycopg.Connection, job):
    """Send again, under the same message id, the message of a queued job read as lost
    (queue_db.stale_queued): the original, if only waiting, stays valid; a retry keeps what
    is left of its delay. Sent holding the job's row, and only while it still seems lost:
    a reaper whose pass overlaps another's passes it by, or finds it sent (two sent it
    twice). The job, or None when there was nothing to send. A Redis error undoes it."""
    settings = get_settings()
    with conn.transaction():
        current = queue_db.lock_lost(conn, job.id, job.message_id,
                                    settings.job_resend_after_s, UNSENT_AFTER_S)
        if current is None:
            return None
        routing.send(conn, current, delay_s=_delay_left(conn, current), same_id=True)
    return current


def _delay_left(conn: psycopg.Connection, job) -> float:
    """What is left of a queued job's retry delay (0 when it is due)."""
    if job.retry_at is None:
        return 0.0
    return max(0.0, (job.retry_at - schedules_db.server_now(conn)).total_seconds())


def _leave_render_queues(conn: psycopg.Connection, gone_after_s: float) -> list[int]:
    """Send back to their own queue the crawls waiting on a render queue that no worker with
    Chromium has taken for `gone_after_s` (see the module's docstring); their ids."""
    moved: list[int] = []
    for render in (queues.PRIORITY_RENDER, queues.SCHEDULED_RENDER):
        if not renderers.gone(render):
            continue
        queue = queues.plain_queue(render)
        for waiting in queue_db.waiting_on_render(conn, queue):
            job = routing.leave_render_queue(conn, waiting, _delay_left(conn, waiting))
            if job is None:  # another reaper did, or it moved on
                continue
            moved.append(job.id)
            with fc_logging.bind(job_id=job.id, dealership_id=job.dealership_id):
                log.warning("job %s waited on queue %s, where no worker with Chromium has "
                            "taken it for %.0f s: sent back to queue %s (a worker without "
                            "Chromium fails it there, one with Chromium runs it)", job.id,
                            render, gone_after_s, queue)
    return moved


def _redis_away(what: str, exc: RedisError) -> None:
    """One line a minute, not one a pass, while Redis is away."""
    if time.monotonic() >= _quiet_until[0]:
        _quiet_until[0] = time.monotonic() + 60
        log.warning("could not %s (nor any after it): %s; trying again on later passes",
                    what, exc)


def start_thread(interval_s: float | None = None) -> threading.Thread:
    """Reap every `interval_s` in a daemon thread of this process (worker processes)."""
    interval = interval_s or max(5.0, get_settings().job_reap_after_s / 4)

    def loop() -> None:
        stop = threading.Event()
        while not stop.wait(interval):
            try:
                with connect() as conn:
                    reap(conn)
            except Exception:  # noqa: BLE001 - keep reaping once the database is back
                log.exception("reaper pass failed")

    thread = threading.Thread(target=loop, name="forecourt-reaper", daemon=True)
    thread.start()
    return thread
