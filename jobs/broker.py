"""The Dramatiq broker: Redis, in forecourt's namespace, with fast dead-worker detection.

Every process that imports `jobs.actors` (workers, the scheduler, the CLI, the API) shares
this broker. Results are not stored: the jobs table is the truth.

Redelivery: a Redis consumer process heartbeats on every broker command (idle consumers poll
at least once per worker timeout, 1 s). Maintenance, run on a fraction of commands, moves the
unacked messages of processes silent for `heartbeat_timeout` ms back onto their queues. With
an 8 s timeout and maintenance on 30% of commands, a killed worker's job is redelivered in
about 10-13 s (measured; see README).

Every Redis command gives up after REDIS_TIMEOUT_S (connecting too): a Redis that accepts a
connection and never answers fails the enqueue (the scheduler tries the slot again a minute
later) instead of freezing the caller, the scheduler's leader above all. Dramatiq's consumers
poll (a short script, then a sleep in the process), so no command legitimately blocks longer.
redis-py 8 has the same default; redis-py 5-7, which pyproject allows, had none.

An actor name this process does not know (a newer release's new actor, met by an older
worker during a rolling deploy) resolves to the broker's `stand_in` actor, which jobs.actors
sets: it puts the message back for a worker that knows it, instead of Dramatiq failing it
into the dead letters.
"""

from __future__ import annotations

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.errors import ActorNotFound
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from crawler.config import get_settings
from crawler.db import redis_url

_broker: ForecourtBroker | None = None
REDIS_TIMEOUT_S = 5.0


class ForecourtBroker(RedisBroker):
    """Dramatiq's Redis broker whose unknown actor names resolve to `stand_in` when set."""

    stand_in: dramatiq.Actor | None = None

    def get_actor(self, actor_name: str) -> dramatiq.Actor:
        try:
            return super().get_actor(actor_name)
        except ActorNotFound:
            if self.stand_in is None:
                raise
            return self.stand_in


def make_broker() -> ForecourtBroker:
    settings = get_settings()
    # Dramatiq's TimeLimit would raise inside a thread that waits on a crawl child; limits are
    # enforced on the child instead (crawl_runner), so the middleware gets a huge limit.
    middleware = [AgeLimit(), TimeLimit(time_limit=7 * 24 * 3600 * 1000),
                  ShutdownNotifications(), Callbacks(), Pipelines(), Retries(max_retries=0),
                  CurrentMessage()]
    client = redis.Redis.from_url(redis_url(), socket_timeout=REDIS_TIMEOUT_S,
                                  socket_connect_timeout=REDIS_TIMEOUT_S)
    return ForecourtBroker(
        client=client,
        namespace=f"{settings.redis_namespace}:dramatiq",
        heartbeat_timeout=settings.job_broker_heartbeat_ms,
        maintenance_chance=settings.job_broker_maintenance_chance,
        dead_message_ttl=7 * 86_400_000,
        middleware=middleware,
    )


def get_broker() -> ForecourtBroker:
    """The process's broker, created and made global on first use."""
    global _broker
    if _broker is None:
        _broker = make_broker()
        dramatiq.set_broker(_broker)
    return _broker
