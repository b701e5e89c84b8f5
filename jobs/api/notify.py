"""Waiting for a job to change without holding a database connection per waiter.

One LISTEN connection per API process receives `forecourt_jobs` notifications (a trigger on
jobs updates sends the job id). Requests waiting on a job register a future; when the job's
notification arrives the job is fetched once, on a pooled connection for a moment, and handed
to every waiter of that job. Thousands of waiting tabs cost thousands of futures, not
connections; notifications arriving together are fetched in one query. If the listener
loses its connection it reconnects and wakes every waiter to re-read, so no change is missed.

The same connection hears `forecourt_tokens` (a token was revoked or deleted), so the
process's token cache drops it at once; the cache is cleared whenever the listener
(re)connects, and only used while it listens.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from crawler.db.connect import session_params

log = logging.getLogger("forecourt.api")

CHANNEL = "forecourt_jobs"
TOKENS_CHANNEL = "forecourt_tokens"

FetchMany = Callable[[list[int]], Awaitable[dict[int, Any]]]


class JobWatch:
    def __init__(self, dsn: str, fetch_many: FetchMany,
                 on_token: Callable[[str | None], None] = lambda prefix: None):
        self.dsn = dsn
        self.fetch_many = fetch_many
        self._pending: dict[int, set[asyncio.Future]] = {}
        self.on_token = on_token  # called with a changed token's prefix, or None for all
        self.waiters: dict[int, set[asyncio.Future]] = {}
        self.listening = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._deliveries: set[asyncio.Task] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="job-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        self._wake_all()

    def register(self, job_id: int) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(job_id, set()).add(fut)
        return fut

    def unregister(self, job_id: int, fut: asyncio.Future) -> None:
        futs = self.waiters.get(job_id)
        if futs is not None:
            futs.discard(fut)
            if not futs:
                del self.waiters[job_id]

    async def _run(self) -> None:
        delay = 0.2
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.dsn, autocommit=True, **session_params(self.dsn))
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    await conn.execute(f"LISTEN {TOKENS_CHANNEL}")
                    self.listening.set()
                    delay = 0.2
                    self._wake_all()  # anything may have changed while we were not listening
                    self.on_token(None)
                    async for note in conn.notifies():
                        if note.channel == TOKENS_CHANNEL:
                            self.on_token(note.payload)
                        elif note.payload.isdigit():
                            self._notified(int(note.payload))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection lost: reconnect with backoff
                log.warning("job listener lost its connection: %s", exc)
            self.listening.clear()
            self.on_token(None)
            self._wake_all()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _notified(self, job_id: int) -> None:
        futs = self.waiters.pop(job_id, None)
        if not futs:
            return
        if not self._pending:  # the first of a batch: deliver once the batch is read
            task = asyncio.create_task(self._deliver())
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)
        self._pending.setdefault(job_id, set()).update(futs)

    async def _deliver(self) -> None:
        await asyncio.sleep(0)  # let the notifications that arrived together join the batch
        batch, self._pending = self._pending, {}
        try:
            got = await self.fetch_many(list(batch))
        except Exception as exc:  # the waiters re-read for themselves
            log.warning("could not fetch %d changed job(s) for their waiters: %s",
                        len(batch), exc)
            got = {}
        for job_id, futs in batch.items():
            for fut in futs:
                if not fut.done():
                    fut.set_result(got.get(job_id))

    def _wake_all(self) -> None:
        waiters, self.waiters = self.waiters, {}
        for futs in waiters.values():
            for fut in futs:
                if not fut.done():
                    fut.set_result(None)
