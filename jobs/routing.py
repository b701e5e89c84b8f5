"""Which queue a job's message goes to, and sending it.

Queues (jobs/queues.py). A job's record keeps its own queue: `priority` for operator, API and
retry work, `scheduled` for the scheduler's. Only the job's current message may claim it: its
id is recorded on the job before the message is sent (`send`).

A mixed fleet. Crawls that must render pages have render queues of their own,
`priority.render` and `scheduled.render`, which only workers that have Chromium consume.
A crawl known to need Chromium before it starts (its dealer's platform renders every listing
page) is sent there while a live worker that has Chromium takes that queue, or one did within
`job_renderer_gone_after_s` (jobs/renderers.py: `expected`). One that turns out to need it on
a worker without Chromium is handed on by jobs/failures.py; a crawl left waiting on a render
queue no worker with Chromium takes goes back to its own queue (`leave_render_queue`, the
reaper's call).
"""

from __future__ import annotations

from crawler.db import dealers as dealers_db
from crawler.db import job_queue as queue_db
from crawler.errors import NotFound
from crawler.models import Job
from jobs import outcome, queues

PRIORITY, SCHEDULED = queues.PRIORITY, queues.SCHEDULED


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
    if job.kind != "crawl" or not needs_chromium(conn, job):
        return queue
    render = queues.render_queue(queue)
    return render if renderers.expected(render) is not None else queue


def needs_chromium(conn, job: Job) -> bool:
    """Whether a job, a crawl, is known to need Chromium before it starts: an attempt of it
    was handed on for want of it (outcome.chromium_handoffs), or its dealer's platform
    renders every listing page (spiders/registry.py)."""
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
    # the actors, declared on the broker: only callers that send need Redis, and jobs.actors
    # imports this module (through jobs.execution) to run its messages
    from jobs.actors import ACTORS, RELEASE

    queue = queue_for(job)
    target = to or route(conn, job)
    actor = ACTORS[(job.kind, target)]
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
