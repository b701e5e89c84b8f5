"""Which queues a live worker that can render pages (it has Chromium) takes, in Redis.

A fleet may mix machines with Chromium and without. Every worker process that has Chromium
(crawler.browser.find_chromium) sets one key per queue it consumes,
`<namespace>:renderer:<queue>`, to its name (host:pid), for TTL_S seconds, and refreshes it
every EVERY_S in a thread of its own (not the reaper's: that one waits on PostgreSQL, and
its period follows `job_reap_after_s`). Any such worker refreshing a key keeps it; when the
last one stops, the key expires TTL_S later. Its queues are the render queues it consumes
(jobs/queues.py) and the plain ones: a worker of the release before, without render queues,
reads `<namespace>:renderer:priority` to hand a crawl on through `priority`. A crawl is sent
to a render queue only while `alive(that queue)`, so its message waits where a worker takes
it (jobs/actors.py: the hand-off of a worker without Chromium, and every send).

Beside each, `<namespace>:renderer-seen:<queue>` says that one did within the last
`job_renderer_gone_after_s` (it lasts that long). A crawl already waiting on a render queue
whose workers with Chromium all stopped (or died) is sent back to its own queue by the
reaper once that key is gone too (`gone`; jobs/reaper.py), not when the first one expires:
a restarting worker with Chromium is back well within it.

A worker stops advertising as soon as it is told to stop (jobs/actors.py, before its
shutdown): from then on it takes no new message, though it may finish a running crawl for
up to the crawl time limit. It leaves its key to expire rather than deleting it: another
live worker may have written it last, and a key briefly outliving its worker only sends a
crawl to wait on a render queue (for a worker that has Chromium to start, or for the
reaper to send it back: jobs/reaper.py), where a key missing while a worker with Chromium lives
would fail a crawl it could run.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterable

from redis.exceptions import RedisError

from crawler.config import get_settings

log = logging.getLogger("forecourt.jobs")

EVERY_S = 5.0
TTL_S = 15  # three refreshes missed


def key(queue: str) -> str:
    return f"{get_settings().redis_namespace}:renderer:{queue}"


def _client():
    from jobs.broker import get_broker

    return get_broker().client


def advertise(queues: Iterable[str]) -> bool:
    """Say, for TTL_S seconds, that this process renders pages from `queues`, if it has a
    Chromium it may execute (looked for every time: installed or removed while it runs).
    Returns whether it has one."""
    from crawler import browser

    if browser.find_chromium() is None:
        return False
    me = f"{socket.gethostname()}:{os.getpid()}"
    seen_s = max(TTL_S, int(get_settings().job_renderer_gone_after_s + 0.999))
    with _client().pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.set(key(queue), me, ex=TTL_S)
            pipe.set(seen_key(queue), me, ex=seen_s)
        pipe.execute()
    return True


def seen_key(queue: str) -> str:
    return f"{get_settings().redis_namespace}:renderer-seen:{queue}"


def alive(queue: str) -> str | None:
    """The name of a live worker that has Chromium and takes `queue`, or None (none, or
    Redis cannot say: then the crawl fails as it would without a fleet)."""
    try:
        found = _client().get(key(queue))
    except RedisError as exc:
        log.warning("could not ask Redis for a worker that has Chromium: %s", exc)
        return None
    return found.decode() if isinstance(found, bytes) else found


def gone(queue: str) -> bool:
    """Whether no worker that has Chromium has advertised `queue` for
    `job_renderer_gone_after_s` (RedisError when Redis cannot say)."""
    return not _client().exists(seen_key(queue))


_stopping = threading.Event()


def start_thread(queues: Iterable[str]) -> threading.Thread:
    """Advertise now, then every EVERY_S, in a daemon thread of this worker process, until
    `stop`."""
    queues = list(queues)

    def loop() -> None:
        quiet_until = 0.0
        while not _stopping.is_set():
            try:
                advertise(queues)
            except RedisError as exc:  # Redis away: advertised again once it is back
                if time.monotonic() >= quiet_until:  # a line a minute, not one a refresh
                    quiet_until = time.monotonic() + 60
                    log.warning("could not advertise Chromium in Redis: %s", exc)
            _stopping.wait(EVERY_S)

    thread = threading.Thread(target=loop, name="forecourt-renderer", daemon=True)
    thread.start()
    return thread


def stop() -> None:
    """Advertise no more (the worker is stopping: it takes no new message)."""
    _stopping.set()
