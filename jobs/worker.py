"""What a worker process adds to the broker, and its name, threads and scheduled slots.

ReaperMiddleware decides which queues the process consumes (the render queues only if it has
Chromium) and starts the reaper's and the renderers' threads; LivePrefetch (jobs/prefetch.py)
keeps each queue consumer from holding more messages than the process can start now.
jobs/actors.py adds both (`install`) before it declares the actors, so the worker command
(`dramatiq jobs.actors`, crawler/cli/worker.py) boots with them.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

import dramatiq

from crawler.config import get_settings
from jobs import queues
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


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


def scheduled_slot_count() -> int:
    """Scheduled attempts a worker process runs at once: all its threads but one."""
    return max(1, max(1, get_settings().worker_threads) - 1)


def _worker_threads() -> int:
    return max(1, get_settings().worker_threads)


def install() -> None:
    """Add both middleware to the process's broker, once."""
    for middleware in (ReaperMiddleware(), LivePrefetch(_worker_threads, scheduled_slot_count)):
        if not any(isinstance(m, type(middleware)) for m in get_broker().middleware):
            get_broker().add_middleware(middleware)
