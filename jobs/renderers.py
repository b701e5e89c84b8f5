"""Which queues a live worker that can render pages (it has Chromium) takes, in Redis.

A fleet may mix machines with Chromium and without. Every worker process that has Chromium
(crawler.browser.find_chromium) says so for each queue it consumes, for TTL_S seconds, and
refreshes it every EVERY_S in a thread of its own (not the reaper's: that one waits on
PostgreSQL, and its period follows `job_reap_after_s`). For a render queue (jobs/queues.py)
each worker has its own entry, its name (host:pid) in the sorted set
`<namespace>:renderers:<queue>`, scored by when it expires (Redis's clock), so one worker
can leave without touching the others'. A plain queue keeps the key a worker of the release
before reads, `<namespace>:renderer:<queue>`, set to the name of whichever wrote it last:
that release, without render queues, hands a crawl on through `priority` while it exists.
A crawl is sent to a render queue only while `expected(that queue)`: a live worker takes it,
or one was seen within `job_renderer_gone_after_s` (restarting, or re-installing its
Chromium), so its message waits where a worker takes it (jobs/failures.py: the hand-off of
a worker without Chromium; jobs/routing.py: every send); if none comes back, the reaper
sends it back to its own queue.

Beside each, `<namespace>:renderer-seen:<queue>` says that one did within the last
`job_renderer_gone_after_s` (it lasts that long). A crawl already waiting on a render queue
whose workers with Chromium all stopped (or died, or lost Chromium) is sent back to its own
queue by the reaper once that key is gone too (`gone`; jobs/reaper.py), not when the first
one expires: a restarting worker with Chromium is back well within it.

A worker stops advertising as soon as it is told to stop (jobs/worker.py, before its
shutdown): from then on it takes no new message, though it may finish a running crawl for
up to the crawl time limit. It leaves its entries to expire (TTL_S) rather than removing
them: one briefly outliving its worker only sends a crawl to wait on a render queue (for a
worker that has Chromium to start, or for the reaper to send it back: jobs/reaper.py).

A worker that loses its Chromium while it runs (the package removed, the binary made not
executable during an upgrade) finds out within EVERY_S, or at once when a render-queue
message reaches it (`check`, jobs/execution.py). It then removes its entries from the render
queues' sets at once, so routing, the hand-off and (after `job_renderer_gone_after_s`) the
reaper see that it renders nothing, while any other worker with Chromium stays named there;
its render queues' consumers take no new message (jobs/prefetch.py: `on_change`); and it
logs that once, with the fix. Its plain queues' keys expire by themselves (TTL_S): another
worker may have written them last. Chromium back (re-installed), it says so once, and
advertises and takes its render queues again: no restart needed, since it kept their
consumers. (A worker that had no Chromium when it started never consumes the render queues:
that one needs a restart, jobs/queues.py.)
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable

from redis.exceptions import RedisError

from crawler.config import get_settings
from jobs.queues import is_render

log = logging.getLogger("forecourt.jobs")

EVERY_S = 5.0
TTL_S = 15  # three refreshes missed

# Redis's clock, not each machine's: the entries of workers on many machines are compared.
_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) + tonumber(t[2]) / 1000000 "
_JOIN = _NOW + """for _, k in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
  redis.call('ZADD', k, now + tonumber(ARGV[2]), ARGV[1])
  redis.call('EXPIRE', k, ARGV[2])
end"""
_LIVING = _NOW + "return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')"


def key(queue: str) -> str:
    """The key of a plain queue (one name: whichever worker wrote it last)."""
    return f"{get_settings().redis_namespace}:renderer:{queue}"


def members_key(queue: str) -> str:
    """The sorted set of a render queue's workers with Chromium (name: expiry)."""
    return f"{get_settings().redis_namespace}:renderers:{queue}"


def seen_key(queue: str) -> str:
    return f"{get_settings().redis_namespace}:renderer-seen:{queue}"


def _client():
    from jobs.broker import get_broker

    return get_broker().client


def _me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def advertise(queues: Iterable[str]) -> None:
    """Say, for TTL_S seconds, that this process renders pages from `queues`."""
    queues = list(queues)
    me = _me()
    seen_s = max(TTL_S, int(get_settings().job_renderer_gone_after_s + 0.999))
    client = _client()
    render = [members_key(q) for q in queues if is_render(q)]
    if render:
        client.eval(_JOIN, len(render), *render, me, TTL_S)
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            if not is_render(queue):
                pipe.set(key(queue), me, ex=TTL_S)
            pipe.set(seen_key(queue), me, ex=seen_s)
        pipe.execute()


def withdraw(queues: Iterable[str]) -> None:
    """Take this process's name off the render queues among `queues` at once (the
    others' stay)."""
    render = [members_key(q) for q in queues if is_render(q)]
    if render:
        me = _me()
        with _client().pipeline(transaction=False) as pipe:
            for name in render:
                pipe.zrem(name, me)
            pipe.execute()


def living(queue: str) -> list[str]:
    """The names of the live workers that have Chromium and take render queue `queue`."""
    found = _client().eval(_LIVING, 1, members_key(queue))
    return sorted(f.decode() if isinstance(f, bytes) else f for f in found)


def alive(queue: str) -> str | None:
    """The name of a live worker that has Chromium and takes `queue`, or None (none, or
    Redis cannot say: then the crawl fails as it would without a fleet)."""
    try:
        if is_render(queue):
            names = living(queue)
            return names[0] if names else None
        found = _client().get(key(queue))
    except RedisError as exc:
        log.warning("could not ask Redis for a worker that has Chromium: %s", exc)
        return None
    return found.decode() if isinstance(found, bytes) else found


def expected(queue: str) -> str | None:
    """Which worker that has Chromium a crawl sent to render queue `queue` waits for, said
    for a log line: a live one that takes it ("host:pid is alive"), else one that did within
    `job_renderer_gone_after_s` ("host:pid was seen within 120 s": restarting, or
    re-installing its Chromium, it is expected back; if none comes, the reaper sends the
    crawl back to its own queue, jobs/reaper.py). None when neither (or Redis cannot say)."""
    try:
        names = living(queue)
        if names:
            return f"{names[0]} is alive"
        seen = _client().get(seen_key(queue))
    except RedisError as exc:  # one line, not one per look-up
        log.warning("could not ask Redis for a worker that has Chromium: %s", exc)
        return None
    if seen is None:
        return None
    return (f"{seen.decode() if isinstance(seen, bytes) else seen} was seen within "
            f"{get_settings().job_renderer_gone_after_s:.0f} s")


def gone(queue: str) -> bool:
    """Whether no worker that has Chromium has advertised `queue` for
    `job_renderer_gone_after_s` (RedisError when Redis cannot say)."""
    return not _client().exists(seen_key(queue))


_stopping = threading.Event()
_lock = threading.Lock()
_watched: dict = {"queues": None, "has": True, "on_change": None}


def check() -> bool:
    """Whether this process has a Chromium it may execute now (looked for every time:
    installed or removed while it runs). In a worker that advertises (`start_thread`), a
    change is acted on here, once: lost, it withdraws from its render queues, tells
    `on_change(False)` (its render consumers take nothing new) and logs one warning with
    the fix; back, it tells `on_change(True)` (they take again) in one line, and its thread
    advertises them again."""
    from crawler import browser

    found = browser.find_chromium()
    with _lock:
        render = [q for q in _watched["queues"] or () if is_render(q)]
        if not render or (found is not None) == _watched["has"]:
            return found is not None  # not a worker with render queues, or no change
        _watched["has"] = found is not None
        if _watched["on_change"] is not None:
            _watched["on_change"](found is not None)
        if found is None:
            _lost(render)
        else:
            log.info("Chromium is back at %s: this worker takes crawls from %s again",
                     found, ", ".join(render))
    return found is not None


def _lost(render: list[str]) -> None:
    from crawler import browser
    from crawler.errors import NoChromium

    why, fix = "no Chromium for JavaScript sites", browser.CHROMIUM_FIX
    try:
        browser.chromium_path()
    except NoChromium as exc:
        why, fix = str(exc), exc.hint or fix
    try:
        withdraw(render)
    except RedisError as exc:  # its entries expire within TTL_S all the same
        log.warning("could not take this worker off %s in Redis: %s", ", ".join(render), exc)
    log.warning("this worker lost its Chromium (%s): it takes no crawl from %s and no longer "
                "says it renders pages; crawls waiting there go to another worker with "
                "Chromium, or back to their own queue once none has been seen for %.0f s. "
                "Re-install it (%s): the worker takes them again, no restart needed",
                why, ", ".join(render), get_settings().job_renderer_gone_after_s, fix)


def start_thread(queues: Iterable[str],
                 on_change: Callable[[bool], None] | None = None) -> threading.Thread:
    """Advertise now, then every EVERY_S, in a daemon thread of this worker process, until
    `stop`, while it has Chromium (`check`; `on_change` hears of a change)."""
    queues = list(queues)
    with _lock:  # it consumes render queues only if it had Chromium as it started
        _watched.update(queues=queues, has=True, on_change=on_change)

    def loop() -> None:
        quiet_until = 0.0
        while not _stopping.is_set():
            try:
                if check():
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
