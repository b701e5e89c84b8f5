"""Configuration, read in one place: environment variables and their defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Every knob forecourt reads. Unprefixed names are the conventional ones (DATABASE_URL)."""

    model_config = SettingsConfigDict(env_prefix="FORECOURT_", extra="ignore")

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "FORECOURT_DATABASE_URL")
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "FORECOURT_REDIS_URL")
    )
    data_dir: Path = Field(default=PROJECT_ROOT / ".forecourt")
    # Prefix of every Redis key forecourt writes (queues, rate limits), so several
    # deployments or test sessions can share one Redis.
    redis_namespace: str = "forecourt"
    # `forecourt db migrate` gives up (applying nothing) when a migration waits longer than
    # this for a table lock: waiting behind a long transaction would stall every writer.
    migrate_lock_timeout_s: float = 5.0
    # Store batches: how many items a pipeline stage works on at once.
    batch_size: int = 500
    # Outbound safety: hosts or networks crawls may reach even though they are private.
    allow_private_hosts: list[str] = Field(default_factory=list)
    # Crawling politeness.
    concurrent_requests_per_domain: int = 4
    download_delay: float = 0.0
    autothrottle: bool = True
    obey_robots: bool = True
    user_agent: str = "forecourt/0.1 (+inventory sync; contact: operator)"
    max_response_bytes: int = 20 * 1024 * 1024
    # Shared request budget per platform backend, across every worker (crawler/ratelimit.py):
    # requests per second on average, keyed by the spider's `rate_limit_backend` (or name);
    # `platform_rate_burst` may go at once. Platforms not named here are not limited this way.
    platform_rate_limits: dict[str, float] = Field(default_factory=lambda: {
        "dealercom": 10.0, "dealerinspire": 10.0, "dealeron": 10.0,
        "dealereprocess": 10.0, "dealervenom": 10.0, "teamvelocity": 10.0,
    })
    platform_rate_burst: int = 10
    # The longest a request waits for its platform's budget before going anyway (counted).
    platform_rate_max_wait_s: float = 30.0
    # Chromium for JavaScript sites (Playwright cannot download its own browser here);
    # unset: /usr/bin/chromium or whatever `chromium` is on PATH.
    chromium_path: str | None = None
    # Playwright bounds: browser contexts and pages per context open at once.
    playwright_max_contexts: int = 2
    playwright_max_pages_per_context: int = 4
    # Each rendered page (crawler/rendering.py): the longest it may take once open (a page
    # whose scripts hang is closed and its request fails), how long its network may stay
    # busy before it is read anyway, and the most rounds of scrolling / "load more" clicks.
    render_timeout_s: float = Field(default=90.0, gt=0)
    render_settle_s: float = Field(default=10.0, ge=0)
    render_more_rounds: int = Field(default=40, ge=1)
    # Crawl subprocess limit, seconds.
    crawl_time_limit_s: int = 30 * 60
    # Job queue (jobs/): Dramatiq on Redis. A worker process missing heartbeats for
    # job_broker_heartbeat_ms is dead and its messages go back to their queue; maintenance
    # (which does that) runs on job_broker_maintenance_chance of a million broker commands.
    job_broker_heartbeat_ms: int = 8_000
    job_broker_maintenance_chance: int = 300_000
    # A running job whose record was not heartbeaten for this long may be taken over by a
    # redelivered message; the reaper requeues (or buries) it after job_reap_after_s.
    job_stale_after_s: float = 6.0
    job_beat_interval_s: float = 0.5
    job_reap_after_s: float = 60.0
    # A queued job whose message seems lost is sent again after this long.
    job_resend_after_s: float = 3600.0
    # Attempts before a transiently failing job is dead; exponential backoff with jitter.
    job_max_attempts: int = 4
    job_min_backoff_s: float = 5.0
    job_max_backoff_s: float = 600.0
    # Finished jobs older than this many days are deleted with their rejects (the reaper,
    # `forecourt jobs prune`); each dealer's last runs are kept. 0 keeps every job.
    job_retention_days: float = Field(default=90.0, ge=0)
    # Worker threads per worker process (set by `forecourt worker --threads`); one of them is
    # kept free of scheduled work for operator/API triggers when there are two or more.
    worker_threads: int = 2
    # Scheduler: tick, jitter added to each slot, backoff cap after repeated failures.
    scheduler_tick_s: float = Field(default=5.0, gt=0)
    # A standby ends the leader's database session (and leads) when it has been idle this
    # long: the leader queries every tick, so it is frozen (stopped, stuck, VM paused).
    # Unset: 120 s, or LEADER_STALE_TICKS ticks when that is longer.
    scheduler_leader_stale_s: float | None = None
    schedule_jitter_s: float = 30.0
    schedule_backoff_max_s: float = 6 * 3600.0
    log_level: str = "INFO"
    # Log lines: "json" (one object per line, with job_id and dealership_id) or "text".
    log_format: str = "json"
    # The demo serves its fixture sites from this port up (fixtures/demo.toml's when unset).
    demo_port: int | None = None
    # Feeds: the decompressed size at which reading stops (compression bombs, runaway feeds),
    # the largest download, the largest single field or JSON record, rows per store batch,
    # and HTTP fetching (timeout per connect and per read, attempts with exponential backoff,
    # and a deadline for the whole download, retries included: a server trickling bytes
    # under the read timeout would otherwise hold a worker for days).
    feed_max_bytes: int = 8 * 1024**3
    feed_max_download_bytes: int = 2 * 1024**3
    feed_max_record_chars: int = 4 * 1024 * 1024
    feed_batch_size: int = 5000
    feed_fetch_timeout_s: float = 60.0
    feed_fetch_attempts: int = 4
    feed_fetch_backoff_s: float = 1.0
    feed_fetch_deadline_s: float = 900.0
    # Worker processes for a large feed's per-row stages (0: none), started once this many
    # rows have taken the full path, or at the first row that does in a feed file of at
    # least feed_stage_min_bytes (a small feed is not worth the processes' start-up).
    feed_stage_processes: int = 1
    feed_stage_min_rows: int = 20_000
    feed_stage_min_bytes: int = 16 * 1024**2
    # Quality webhooks (a dealer's webhook_url hears of runs that are not healthy): timeout
    # per POST, attempts, and the first backoff between attempts (doubling).
    webhook_timeout_s: float = 3.0
    webhook_attempts: int = 3
    webhook_backoff_s: float = 0.2
    # HTTP API (`forecourt api`).
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_workers: int = 1
    # Per token: at most api_rate_limit requests in each api_rate_window_s window (in Redis).
    api_rate_limit: int = 600
    api_rate_window_s: int = 60
    api_max_body_bytes: int = 16 * 1024
    api_wait_max_s: float = 30.0
    # Async PostgreSQL connections per API process (waiters hold none).
    api_pool_size: int = 10
    # Origins of the dealer UI allowed by CORS (none: CORS off).
    api_cors_origins: list[str] = Field(default_factory=list)
    # /metrics reads job figures from the database at most this often per process.
    api_metrics_cache_s: float = 5.0
    # Token records are cached per process this long (revocations evict them at once).
    api_token_cache_s: float = 60.0

    @model_validator(mode="after")
    def _leader_stale_above_ticks(self) -> Settings:
        ticks = LEADER_STALE_TICKS * self.scheduler_tick_s
        if self.scheduler_leader_stale_s is None:
            self.scheduler_leader_stale_s = max(120.0, ticks)
        elif self.scheduler_leader_stale_s < ticks:
            raise ValueError(
                f"FORECOURT_SCHEDULER_LEADER_STALE_S ({self.scheduler_leader_stale_s:g} s) must"
                f" be at least {LEADER_STALE_TICKS} ticks (FORECOURT_SCHEDULER_TICK_S is"
                f" {self.scheduler_tick_s:g} s), or standbys would end a healthy leader's"
                " session between its ticks")
        return self


# A healthy leader is silent for a tick (and its Redis calls) between passes.
LEADER_STALE_TICKS = 4


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests change the environment)."""
    get_settings.cache_clear()
