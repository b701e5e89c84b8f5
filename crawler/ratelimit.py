"""A request budget per platform backend, shared through Redis by every crawl process.

Many dealers sit on one platform (one hosting backend, one inventory API), so two workers
crawling two such dealers must share that platform's budget. The budget is a GCRA (generic
cell rate algorithm, a token bucket kept as one timestamp): `rate` requests per second on
average, at most `burst` at once. One Lua script reads Redis's own clock, so every process
agrees on time, and either grants a request or says how long to wait. Keys are
`<redis_namespace>:ratelimit:<backend>`; a counter beside each key counts grants and waits,
for operators and tests.

`Budget` and `budgets()` read the configuration; `SharedLimiter` (blocking, for tools and
tests) and `AsyncSharedLimiter` (for the Scrapy middleware, never blocking the reactor) ask
Redis.
"""

from __future__ import annotations

from pydantic import BaseModel

from crawler.config import get_settings

# ARGV: emission interval in ms (1000 / rate), burst. Returns {granted 0|1, wait ms as text}.
GCRA = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat + interval - interval * burst
if allow_at > now then
  redis.call('HINCRBY', KEYS[2], 'waits', 1)
  return {0, tostring(allow_at - now)}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
redis.call('HINCRBY', KEYS[2], 'granted', 1)
return {1, '0'}
"""


class Budget(BaseModel):
    """Requests per second on average, and how many may go at once."""

    rate: float
    burst: int = 1

    @property
    def interval_ms(self) -> float:
        return 1000.0 / self.rate


def budgets() -> dict[str, Budget]:
    """The configured budget of every platform backend (crawler.config)."""
    s = get_settings()
    return {backend: Budget(rate=rate, burst=s.platform_rate_burst)
            for backend, rate in s.platform_rate_limits.items() if rate and rate > 0}


def keys(backend: str, namespace: str | None = None) -> list[str]:
    ns = namespace or get_settings().redis_namespace
    return [f"{ns}:ratelimit:{backend}", f"{ns}:ratelimit:{backend}:stats"]


def _result(reply) -> float:
    granted, wait_ms = reply
    return 0.0 if int(granted) else max(float(wait_ms) / 1000.0, 0.001)


class SharedLimiter:
    """Blocking client: `try_acquire` returns 0 when granted, else seconds to wait."""

    def __init__(self, client, namespace: str | None = None):
        self.client = client
        self.namespace = namespace
        self.script = client.register_script(GCRA)

    def try_acquire(self, backend: str, budget: Budget) -> float:
        return _result(self.script(keys=keys(backend, self.namespace),
                                   args=[budget.interval_ms, budget.burst]))

    def stats(self, backend: str) -> dict[str, int]:
        raw = self.client.hgetall(keys(backend, self.namespace)[1])
        return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}


class AsyncSharedLimiter:
    """The same budget for asyncio code (the crawl's reactor runs on asyncio)."""

    def __init__(self, client, namespace: str | None = None):
        self.client = client
        self.namespace = namespace
        self.script = client.register_script(GCRA)

    async def try_acquire(self, backend: str, budget: Budget) -> float:
        return _result(await self.script(keys=keys(backend, self.namespace),
                                         args=[budget.interval_ms, budget.burst]))
