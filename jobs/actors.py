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

This module is the worker command's entry (`dramatiq jobs.actors`, crawler/cli/worker.py):
importing it adds the worker's middleware to the broker (jobs/worker.py), then declares
every actor. A message's life goes on in jobs/execution.py (claiming and running its job),
jobs/failures.py (what follows a failed attempt) and jobs/routing.py (which queue a job's
message goes to, and sending it).
"""

from __future__ import annotations

import logging

import dramatiq

from jobs import queues, worker
from jobs.broker import get_broker
from jobs.execution import execute

log = logging.getLogger("forecourt.jobs")

worker.install()  # before any actor is declared on the process's broker

PRIORITY, SCHEDULED = queues.PRIORITY, queues.SCHEDULED
PRIORITY_RENDER, SCHEDULED_RENDER = queues.PRIORITY_RENDER, queues.SCHEDULED_RENDER
QUEUES = queues.ALL


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

# the actor of each (job kind, queue) a message goes to (jobs/routing.py: send)
ACTORS = {
    ("crawl", PRIORITY): run_crawl_job,
    ("feed", PRIORITY): run_feed_job,
    ("crawl", SCHEDULED): run_scheduled_crawl_job,
    ("feed", SCHEDULED): run_scheduled_feed_job,
    ("crawl", PRIORITY_RENDER): run_render_crawl_job,
    ("crawl", SCHEDULED_RENDER): run_scheduled_render_crawl_job,
}
