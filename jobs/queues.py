"""The job queues, and which of them a worker process consumes. (No broker here: the CLI
checks `forecourt worker --queue` against these names without connecting to Redis.)

`priority` carries operator, API and retry work; `scheduled` the scheduler's (jobs/actors.py).
Each has a render queue beside it, `priority.render` and `scheduled.render`, for crawls that
must render pages in headless Chromium, and only worker processes that have Chromium when
they start consume those. A crawl known to need Chromium (its dealer's platform renders
every listing page, or an attempt of it already failed for want of Chromium) is sent to the
render queue of its own queue while a live worker that has Chromium takes it
(jobs/renderers.py), and waits there, in line, until one has an idle thread: a worker without
Chromium never sees it again, so nothing is handed back and forth and nothing is counted.
When none has taken that render queue for `job_renderer_gone_after_s` (the last one stopped
or died), the reaper sends it back to its own queue (jobs/reaper.py).

Two render queues, not one: the reasons the plain queues are two hold for rendered crawls as
well. Each queue has its own consumer, so a backlog of scheduled JavaScript crawls never hides
an operator's, and a worker's scheduled slots (all its threads but one) are kept by what its
scheduled consumers prefetch (jobs/prefetch.py), which needs scheduled work on queues of its
own. A job's record keeps its plain queue (`jobs.queue`), and the id of a message that went
to the render queue (`jobs.render_message_id`): the render queue is where its message goes,
decided at each send from the record and from who is alive, so a release before this one
(which knows no render queue) still re-sends and runs every job it finds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

PRIORITY = "priority"
SCHEDULED = "scheduled"
_RENDER = ".render"
PRIORITY_RENDER = PRIORITY + _RENDER
SCHEDULED_RENDER = SCHEDULED + _RENDER
PLAIN = (PRIORITY, SCHEDULED)
ALL = (PRIORITY, SCHEDULED, PRIORITY_RENDER, SCHEDULED_RENDER)
# A queue name no actor declares: a worker whitelisting only it consumes nothing (Dramatiq
# reads an empty whitelist as "every queue").
NOTHING = "forecourt.none"


def is_render(queue: str) -> bool:
    return queue.endswith(_RENDER)


def render_queue(queue: str) -> str:
    """The render queue beside `queue` (itself for a render queue)."""
    return queue if is_render(queue) else queue + _RENDER


def plain_queue(queue: str) -> str:
    """The plain queue a render queue stands beside (itself for a plain queue)."""
    return queue.removesuffix(_RENDER)


# What a crawl on a render queue waits for, besides a free thread (the API's `waiting_for`).
CHROMIUM_WAIT = "a worker with Chromium"


def waits_on(job: Any) -> str | None:
    """The queue a queued job's message waits on: the render queue beside its own while its
    current message went there (`render_message_id`), else its own. None unless queued."""
    if job.state != "queued" or job.queue is None:
        return None
    on_render = job.render_message_id is not None and job.render_message_id == job.message_id
    return render_queue(job.queue) if on_render else job.queue


def waiting_for(job: Any) -> str | None:
    """What a queued job waits for beyond a free worker: CHROMIUM_WAIT on a render queue."""
    queue = waits_on(job)
    return CHROMIUM_WAIT if queue is not None and is_render(queue) else None


def consumed(named: Iterable[str] | None, renders: bool) -> list[str]:
    """The queues a worker process consumes: those `named` (`forecourt worker --queue`;
    both plain queues when none), each with its render queue when the process has Chromium
    (`renders`); without Chromium no render queue, named or not."""
    chosen = set(named or PLAIN)
    if renders:
        chosen |= {render_queue(q) for q in chosen}
    else:
        chosen = {q for q in chosen if not is_render(q)}
    return [q for q in ALL if q in chosen]
