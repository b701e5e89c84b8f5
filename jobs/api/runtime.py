"""What one API process holds open: database pools, Redis, the rate limiters, the job watch."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from uuid import UUID

import redis.asyncio as aredis
from fastapi import Request
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from crawler.config import Settings
from crawler.db import database_url, redis_url
from crawler.db import jobs_async as ajobs_db
from crawler.db.connect import session_params
from crawler.errors import one_line
from crawler.models import ApiToken, Job
from jobs.api.notify import JobWatch
from jobs.api.ratelimit import Limiter, Pause


@dataclass
class Runtime:
    settings: Settings
    pool: AsyncConnectionPool
    redis: aredis.Redis
    limiter: Limiter
    watch: JobWatch
    # Failed authentications per client address; None when FORECOURT_API_AUTH_FAIL_LIMIT=0.
    auth_failures: Limiter | None = None
    # Writes go through the same synchronous functions as the CLI, on worker threads.
    sync_pool: ConnectionPool | None = None
    touched: dict[str, float] = field(default_factory=dict)
    # prefix -> (token record, stored hash, expiry): valid only while the watch listens.
    token_cache: dict[str, tuple[ApiToken, bytes, float]] = field(default_factory=dict)

    token_generation: int = 0  # moves on every eviction: lookups racing one are not cached

    def forget_token(self, prefix: str | None) -> None:
        self.token_generation += 1
        if prefix is None:
            self.token_cache.clear()
        else:
            self.token_cache.pop(prefix, None)

    async def job(self, job_id: int) -> tuple[Job, str] | None:
        async with self.pool.connection() as conn:
            return await ajobs_db.aget_with_slug(conn, job_id)

    async def job_by_public_id(self, public_id: UUID) -> tuple[Job, str] | None:
        async with self.pool.connection() as conn:
            return await ajobs_db.aget_public_with_slug(conn, public_id)

    async def jobs(self, job_ids: list[int]) -> dict[int, tuple[Job, str]]:
        async with self.pool.connection() as conn:
            return await ajobs_db.aget_many_with_slug(conn, job_ids)

    async def queue_down(self) -> str | None:
        """Why Redis cannot take a job's message now, else None: a ping first, as `crawl
        --queue` does, so a trigger during an outage records no job only to fail it."""
        try:
            async with asyncio.timeout(2):
                await self.redis.ping()
            return None
        except (RedisError, OSError, TimeoutError) as exc:
            return one_line(exc)

    async def call(self, fn, *args, **kwargs):
        """Run a synchronous library function with a pooled connection on a worker thread."""
        def run():
            with self.sync_pool.connection() as conn:
                return fn(conn, *args, **kwargs)
        return await run_in_threadpool(run)


async def open_runtime(settings: Settings) -> Runtime:
    dsn = await run_in_threadpool(database_url)  # may start the embedded server
    rurl = await run_in_threadpool(redis_url)
    pool = AsyncConnectionPool(
        dsn, min_size=min(2, settings.api_pool_size), max_size=settings.api_pool_size,
        kwargs={"autocommit": True, "row_factory": dict_row, **session_params(dsn)},
        open=False, timeout=settings.api_pool_timeout_s)
    await pool.open(wait=True, timeout=30)
    sync_pool = ConnectionPool(dsn, min_size=0, max_size=4,
                               kwargs={"autocommit": True, "row_factory": dict_row,
                                       **session_params(dsn)},
                               open=True, timeout=settings.api_pool_timeout_s)
    # One quick retry: a request must not stall on a Redis that is down (see ratelimit).
    client = aredis.Redis.from_url(rurl, socket_timeout=1, socket_connect_timeout=0.5,
                                   retry=Retry(NoBackoff(), 1))
    pause = Pause()  # Redis failing for one limiter is failing for both
    limiter = Limiter(client, settings.redis_namespace, settings.api_rate_limit,
                      settings.api_rate_window_s, pause=pause)
    auth_failures = None
    if settings.api_auth_fail_limit > 0:
        auth_failures = Limiter(client, settings.redis_namespace, settings.api_auth_fail_limit,
                                settings.api_auth_fail_window_s, bucket="authfail", pause=pause)
    runtime = Runtime(settings=settings, pool=pool, redis=client, limiter=limiter,
                      watch=None, auth_failures=auth_failures,  # type: ignore[arg-type]
                      sync_pool=sync_pool)
    runtime.watch = JobWatch(dsn, runtime.jobs, runtime.forget_token)
    runtime.watch.start()
    return runtime


async def close_runtime(runtime: Runtime) -> None:
    await runtime.watch.stop()
    await runtime.pool.close()
    if runtime.sync_pool is not None:
        await run_in_threadpool(runtime.sync_pool.close)
    await runtime.redis.aclose()


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime
