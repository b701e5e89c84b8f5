"""How many messages a worker process's queue consumers may hold, kept live.

A message a worker has taken off Redis but cannot start waits inside that worker, however
idle the others are: an operator job behind a crawl, or the oldest scheduled job while newer
ones run elsewhere. So each consumer holds no more messages than can start now:

- priority: the idle threads (priority work may use every thread);
- scheduled: the free scheduled slots (all threads but one, see jobs/worker.py), and no more
  than the idle threads left over by priority messages already taken.

A render queue (jobs/queues.py, consumed by workers that have Chromium) counts with its plain
queue: `priority.render` with `priority`, `scheduled.render` with `scheduled` (its crawls use
the same scheduled slots), and each of the pair may take what the pair may. So a worker that
has Chromium and is busy holds no rendered crawl either: it waits in Redis for the first
worker with Chromium and an idle thread.

Dramatiq's Redis consumer fetches `prefetch - outstanding` messages whenever its cache is
empty, reading `prefetch` on every fetch (its outstanding messages are the ones it handed out
and has not acked, running or waiting, plus its cache). The middleware below counts the
messages each queue runs (before/after process, after skip) and sets both consumers'
prefetch after every change, so waiting messages stay in Redis in the order they were
queued, where any worker with an idle thread takes the oldest. The delay queues' consumers
(`*.DQ`: retries and other delayed messages waiting for their time) keep Dramatiq's large
prefetch: their messages only wait in the worker until due, then go back onto their queue.

A worker that lost its Chromium while it runs (jobs/renderers.py) keeps its render queues'
consumers (Dramatiq has no clean way to stop one consumer of a running worker and start it
again) but lets them take nothing new: their prefetch is what they hold, so they only poll
an empty cache, and the render messages stay in Redis for a worker that has Chromium. Once
Chromium is back they take again as before.

A residue remains: two consumers fetching in the same instant on an idle worker may both
count the same idle thread; the scheduled message then waits for the next free thread.
"""

from __future__ import annotations

import threading

import dramatiq

from jobs.queues import ALL, PRIORITY, SCHEDULED, is_render, plain_queue


def limits(threads: int, slots: int, running: dict[str, int],
           outstanding: dict[str, int], render: bool = True) -> dict[str, int]:
    """Each queue consumer's prefetch: the messages it holds (`outstanding`, running or
    waiting in the worker) plus the ones it may take now, given the messages each queue
    runs (`running`). A render queue counts with its plain queue, and takes nothing new
    unless the process has Chromium (`render`) (a queue missing from both dicts:
    nothing)."""
    queues = [q for q in ALL if q in running or q in outstanding]
    ran = {q: running.get(q, 0) for q in queues}
    held = {q: outstanding.get(q, 0) for q in queues}

    def pair(values: dict[str, int], kind: str) -> int:
        return sum(v for q, v in values.items() if plain_queue(q) == kind)

    idle = max(0, threads - sum(ran.values()))
    waiting = {q: max(0, held[q] - ran[q]) for q in queues}
    may_take = {
        PRIORITY: idle,
        SCHEDULED: min(max(0, slots - pair(ran, SCHEDULED)),
                       max(0, idle - pair(waiting, PRIORITY))),
    }
    return {q: held[q] + (0 if is_render(q) and not render else
                          max(0, may_take[plain_queue(q)] - pair(waiting, plain_queue(q))))
            for q in queues}


class LivePrefetch(dramatiq.Middleware):
    """Sets the priority and scheduled consumers' prefetch to what the process can start now
    (see the module's docstring). Thread-safe: worker threads and consumer threads call it."""

    def __init__(self, threads, slots) -> None:
        self._threads = threads  # callables: the settings are read once a worker boots
        self._slots = slots
        self._lock = threading.Lock()
        self._running = dict.fromkeys(ALL, 0)
        self._consumers: dict[str, object] = {}
        self._render = True

    def take_render(self, render: bool) -> None:
        """Whether the render queues' consumers may take new messages (the process has
        Chromium: jobs/renderers.py calls this when it is lost or back)."""
        with self._lock:
            self._render = render
            self._update()

    def before_worker_boot(self, broker, worker) -> None:
        threads = worker.worker_threads
        self._threads = lambda: threads

    def after_consumer_thread_boot(self, broker, thread) -> None:
        if thread.queue_name in self._running:  # not the delay queues
            with self._lock:
                self._consumers[thread.queue_name] = thread
                self._update()

    def before_process_message(self, broker, message) -> None:
        self._count(message, +1)

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        self._count(message, -1)

    def after_skip_message(self, broker, message) -> None:
        self._count(message, -1)

    def after_ack(self, broker, message) -> None:
        self._refresh()

    def after_nack(self, broker, message) -> None:
        self._refresh()

    def _count(self, message, step: int) -> None:
        if message.queue_name in self._running:
            with self._lock:
                self._running[message.queue_name] = max(
                    0, self._running[message.queue_name] + step)
                self._update()

    def _refresh(self) -> None:
        with self._lock:
            self._update()

    def _update(self) -> None:
        outstanding = {}
        for queue, thread in self._consumers.items():
            consumer = getattr(thread, "consumer", None)
            outstanding[queue] = getattr(consumer, "outstanding_message_count", 0) or 0
        running = {q: n for q, n in self._running.items() if q in self._consumers}
        wanted = limits(max(1, self._threads()), self._slots(), running, outstanding,
                        self._render)
        for queue, thread in self._consumers.items():
            thread.prefetch = wanted[queue]  # a consumer made after a reconnect starts so
            consumer = getattr(thread, "consumer", None)
            if consumer is not None and hasattr(consumer, "prefetch"):
                consumer.prefetch = wanted[queue]  # read on its next fetch
