"""How many messages a worker process's queue consumers may hold, kept live.

A message a worker has taken off Redis but cannot start waits inside that worker, however
idle the others are: an operator job behind a crawl, or the oldest scheduled job while newer
ones run elsewhere. So each consumer holds no more messages than can start now:

- priority: the idle threads (priority work may use every thread);
- scheduled: the free scheduled slots (all threads but one, see jobs/actors.py), and no more
  than the idle threads left over by priority messages already taken.

Dramatiq's Redis consumer fetches `prefetch - outstanding` messages whenever its cache is
empty, reading `prefetch` on every fetch (its outstanding messages are the ones it handed out
and has not acked, running or waiting, plus its cache). The middleware below counts the
messages each queue runs (before/after process, after skip) and sets both consumers'
prefetch after every change, so waiting messages stay in Redis in the order they were
queued, where any worker with an idle thread takes the oldest. The delay queues' consumers
(`*.DQ`: retries and other delayed messages waiting for their time) keep Dramatiq's large
prefetch: their messages only wait in the worker until due, then go back onto their queue.

A residue remains: two consumers fetching in the same instant on an idle worker may both
count the same idle thread; the scheduled message then waits for the next free thread.
"""

from __future__ import annotations

import threading

import dramatiq

PRIORITY = "priority"
SCHEDULED = "scheduled"


def limits(threads: int, slots: int, running: dict[str, int],
           outstanding: dict[str, int]) -> dict[str, int]:
    """Each queue consumer's prefetch: the messages it holds (`outstanding`, running or
    waiting in the worker) plus the ones it may take now, given the messages each queue
    runs (`running`)."""
    busy = running[PRIORITY] + running[SCHEDULED]
    idle = max(0, threads - busy)
    waiting = {q: max(0, outstanding[q] - running[q]) for q in (PRIORITY, SCHEDULED)}
    may_take = {
        PRIORITY: idle,
        SCHEDULED: min(max(0, slots - running[SCHEDULED]), max(0, idle - waiting[PRIORITY])),
    }
    return {q: outstanding[q] + max(0, may_take[q] - waiting[q]) for q in (PRIORITY, SCHEDULED)}


class LivePrefetch(dramatiq.Middleware):
    """Sets the priority and scheduled consumers' prefetch to what the process can start now
    (see the module's docstring). Thread-safe: worker threads and consumer threads call it."""

    def __init__(self, threads, slots) -> None:
        self._threads = threads  # callables: the settings are read once a worker boots
        self._slots = slots
        self._lock = threading.Lock()
        self._running = {PRIORITY: 0, SCHEDULED: 0}
        self._consumers: dict[str, object] = {}

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
        for queue in self._running:
            thread = self._consumers.get(queue)
            consumer = getattr(thread, "consumer", None)
            outstanding[queue] = getattr(consumer, "outstanding_message_count", 0) or 0
        wanted = limits(max(1, self._threads()), self._slots(), self._running, outstanding)
        for queue, thread in self._consumers.items():
            thread.prefetch = wanted[queue]  # a consumer made after a reconnect starts so
            consumer = getattr(thread, "consumer", None)
            if consumer is not None and hasattr(consumer, "prefetch"):
                consumer.prefetch = wanted[queue]  # read on its next fetch
