"""Rate limiting in Redis, so limits hold across any number of API processes: requests per
token, and failed authentications per client address.

A fixed window per key: one atomic script increments the window's counter, sets its expiry
on the first hit and returns the count and the time left. Over the limit, the API answers
429 with Retry-After (the seconds until the window ends). If Redis cannot be reached the
request is let through (status polling matters more than the limit) and the failure logged;
Redis is then left alone for a few seconds, by every limiter sharing the `Pause`, so requests
do not each wait on it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import NamedTuple

import redis.asyncio as aredis
from redis.exceptions import RedisError

log = logging.getLogger("forecourt.api")

SKIP_S = 5  # after a Redis failure, let requests through unchecked for this long

# KEYS[1]: the key to count. KEYS[2], if given: a gate, another limiter's key whose count
# has reached ARGV[2]: then nothing is counted and {-1, the gate's ttl} returned.
_SCRIPT = """
if KEYS[2] then
  local spent = tonumber(redis.call('GET', KEYS[2]) or '0')
  if spent >= tonumber(ARGV[2]) then return {-1, redis.call('PTTL', KEYS[2])} end
end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"""


class Hit(NamedTuple):
    allowed: bool
    remaining: int
    retry_after: int  # seconds, when not allowed
    gated: bool = False  # refused by the gate, not by this limiter's own count
    reset_ms: int | None = None  # the window's time left; None: nothing was counted (Redis
    # unavailable, or the gate refused), so there is no quota to tell


@dataclass
class Pause:
    """Until when (monotonic) limiters sharing a Redis client let requests through unchecked."""

    until: float = 0.0


class Limiter:
    """Counts hits per key (a token's prefix, a client address) in the current window."""

    def __init__(self, client: aredis.Redis, namespace: str, limit: int, window_s: int,
                 bucket: str = "rate", pause: Pause | None = None):
        self.client = client
        self.namespace = namespace
        self.bucket = bucket
        self.limit = limit
        self.window_ms = int(window_s * 1000)
        self.script = client.register_script(_SCRIPT)
        self.pause = pause or Pause()

    def key(self, token_key: str) -> str:
        return f"{self.namespace}:api:{self.bucket}:{token_key}"

    async def hit(self, token_key: str, gate: tuple[Limiter, str] | None = None) -> Hit:
        """Count one request, unless `gate` (another limiter and its key) has reached its
        limit: checked in the same round trip, and then nothing is counted."""
        if time.monotonic() < self.pause.until:
            return Hit(True, self.limit, 0)
        keys, args = [self.key(token_key)], [self.window_ms]
        if gate is not None:
            keys.append(gate[0].key(gate[1]))
            args.append(gate[0].limit)
        try:
            count, ttl_ms = await self.script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            self._off(exc)
            return Hit(True, self.limit, 0)
        count, ttl_ms = int(count), int(ttl_ms)
        if count < 0:
            return Hit(False, self.limit, _seconds(ttl_ms), gated=True)
        if count > self.limit:
            return Hit(False, 0, _seconds(ttl_ms), reset_ms=ttl_ms)
        return Hit(True, self.limit - count, 0, reset_ms=ttl_ms)

    async def spent(self, key: str) -> int:
        """Seconds until `key`'s window ends if its hits have reached the limit, else 0;
        counts nothing."""
        if time.monotonic() < self.pause.until:
            return 0
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                count, ttl_ms = await pipe.get(self.key(key)).pttl(self.key(key)).execute()
        except (RedisError, OSError) as exc:
            self._off(exc)
            return 0
        if count is None or int(count) < self.limit:
            return 0
        return _seconds(int(ttl_ms))

    def _off(self, exc: BaseException) -> None:
        log.warning("rate limits off for %d s, Redis unavailable: %s", SKIP_S, exc)
        self.pause.until = time.monotonic() + SKIP_S


def quota_headers(limit: int, remaining: int, reset_s: int) -> dict[str, str]:
    """The quota a client has left, as draft-ietf-httpapi-ratelimit-headers' widely
    implemented form: RateLimit-Limit (requests per window), RateLimit-Remaining (left in
    this window) and RateLimit-Reset (seconds until the window ends)."""
    return {"RateLimit-Limit": str(limit), "RateLimit-Remaining": str(max(0, remaining)),
            "RateLimit-Reset": str(max(0, reset_s))}


def _seconds(ttl_ms: int) -> int:
    """Whole seconds left (at least 1; a key that just expired or has no expiry: 1)."""
    return max(1, math.ceil(ttl_ms / 1000))
