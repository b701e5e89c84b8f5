"""Per-token rate limiting in Redis, so the limit holds across any number of API processes.

A fixed window per token: one atomic script increments the window's counter, sets its expiry
on the first hit and returns the count and the time left. Over the limit, the API answers
429 with Retry-After (the seconds until the window ends). If Redis cannot be reached the
request is let through (status polling matters more than the limit) and the failure logged;
Redis is then left alone for a few seconds so requests do not each wait on it.
"""

from __future__ import annotations

import logging
import math
import time

import redis.asyncio as aredis
from redis.exceptions import RedisError

log = logging.getLogger("forecourt.api")

SKIP_S = 5  # after a Redis failure, let requests through unchecked for this long

_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"""


class Limiter:
    """Counts a token's requests in the current window."""

    def __init__(self, client: aredis.Redis, namespace: str, limit: int, window_s: int):
        self.client = client
        self.namespace = namespace
        self.limit = limit
        self.window_ms = int(window_s * 1000)
        self.script = client.register_script(_SCRIPT)
        self.skip_until = 0.0

    def key(self, token_key: str) -> str:
        return f"{self.namespace}:api:rate:{token_key}"

    async def hit(self, token_key: str) -> tuple[bool, int, int]:
        """(allowed, remaining, retry_after_s) after counting one request."""
        if time.monotonic() < self.skip_until:
            return True, self.limit, 0
        try:
            count, ttl_ms = await self.script(keys=[self.key(token_key)],
                                              args=[self.window_ms])
        except (RedisError, OSError) as exc:
            log.warning("rate limits off for %d s, Redis unavailable: %s", SKIP_S, exc)
            self.skip_until = time.monotonic() + SKIP_S
            return True, self.limit, 0
        count, ttl_ms = int(count), int(ttl_ms)
        remaining = max(self.limit - count, 0)
        if count > self.limit:
            return False, 0, max(1, math.ceil(ttl_ms / 1000))
        return True, remaining, 0
