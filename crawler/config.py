"""Configuration, read in one place: environment variables and their defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

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
    redis_namespace: str = Field(default="forecourt", min_length=1)
    # `forecourt db migrate` gives up (applying nothing) when a migration waits longer than
    # this for a table lock: waiting behind a long transaction would stall every writer.
    migrate_lock_timeout_s: float = Field(default=5.0, gt=0)
    # Store batches: how many items a pipeline stage works on at once.
    batch_size: int = Field(default=500, ge=1)
    # Outbound safety: hosts or networks crawls may reach even though they are private.
    allow_private_hosts: list[str] = Field(default_factory=list)
    # Crawling politeness.
    concurrent_requests_per_domain: int = Field(default=4, ge=1)
    download_delay: float = Field(default=0.0, ge=0)
    autothrottle: bool = True
    obey_robots: bool = True
    user_agent: str = "forecourt/0.1 (+inventory sync; contact: operator)"
    max_response_bytes: int = Field(default=20 * 1024 * 1024, ge=1)  # Scrapy: 0 = no limit
    # Shared request budget per platform backend, across every worker (crawler/ratelimit.py):
    # requests per second on average, keyed by the spider's `rate_limit_backend` (or name);
    # `platform_rate_burst` may go at once. Platforms not named here are not limited this way.
    platform_rate_limits: dict[str, float] = Field(default_factory=lambda: {
        "dealercom": 10.0, "dealerinspire": 10.0, "dealeron": 10.0,
        "dealereprocess": 10.0, "dealervenom": 10.0, "teamvelocity": 10.0,
    })
    platform_rate_burst: int = Field(default=10, ge=1)
    # The longest a request waits for its platform's budget before going anyway (counted).
    platform_rate_max_wait_s: float = Field(default=30.0, ge=0)
    # Chromium for JavaScript sites (Playwright cannot download its own browser here);
    # unset: /usr/bin/chromium or whatever `chromium` is on PATH.
    chromium_path: str | None = None
    # Playwright bounds: browser contexts and pages per context open at once.
    playwright_max_contexts: int = Field(default=2, ge=1)
    playwright_max_pages_per_context: int = Field(default=4, ge=1)
    # Each rendered page (crawler/rendering.py): the longest it may take once open (a page
    # whose scripts hang is closed and its request fails), how long its network may stay
    # busy before it is read anyway, and the most rounds of scrolling / "load more" clicks.
    render_timeout_s: float = Field(default=90.0, gt=0)
    render_settle_s: float = Field(default=10.0, ge=0)
    render_more_rounds: int = Field(default=40, ge=1)
    # Crawl subprocess limit, seconds.
    crawl_time_limit_s: int = Field(default=30 * 60, ge=1)
    # Job queue (jobs/): Dramatiq on Redis. A worker process missing heartbeats for
    # job_broker_heartbeat_ms is dead and its messages go back to their queue; maintenance
    # (which does that) runs on job_broker_maintenance_chance of a million broker commands.
    job_broker_heartbeat_ms: int = Field(default=8_000, ge=1)
    job_broker_maintenance_chance: int = Field(default=300_000, ge=1, le=1_000_000)
    # A running job whose record was not heartbeaten for this long may be taken over by a
    # redelivered message; the reaper requeues (or buries) it after job_reap_after_s.
    job_stale_after_s: float = Field(default=6.0, gt=0)
    job_beat_interval_s: float = Field(default=0.5, gt=0)
    job_reap_after_s: float = Field(default=60.0, gt=0)
    # A queued job whose message seems lost is sent again after this long.
    job_resend_after_s: float = Field(default=3600.0, gt=0)
    # A crawl waiting on a render queue that no worker with Chromium has advertised for this
    # long (jobs/renderers.py; a worker's advertisement lasts 15 s, so no less) is sent back
    # to its own queue by the reaper, where a worker without Chromium fails it in one line.
    # Longer than a restart of the workers with Chromium takes, so that a restart fails none.
    job_renderer_gone_after_s: float = Field(default=120.0, ge=15)
    # Attempts before a transiently failing job is dead; exponential backoff with jitter.
    job_max_attempts: int = Field(default=4, ge=1)
    job_min_backoff_s: float = Field(default=5.0, ge=0)
    job_max_backoff_s: float = Field(default=600.0, ge=0)
    # Finished jobs older than this many days are deleted with their rejects (the reaper,
    # `forecourt jobs prune`); each dealer's last runs are kept. 0 keeps every job.
    job_retention_days: float = Field(default=90.0, ge=0)
    # Worker threads per worker process (set by `forecourt worker --threads`); one of them is
    # kept free of scheduled work for operator/API triggers when there are two or more.
    worker_threads: int = Field(default=2, ge=1)
    # Scheduler: tick, jitter added to each cron slot (interval slots are spread by each
    # dealer's phase), backoff cap after repeated failures.
    scheduler_tick_s: float = Field(default=5.0, gt=0)
    # A standby ends the leader's database session (and leads) when it has been idle this
    # long: the leader queries every tick, so it is frozen (stopped, stuck, VM paused).
    # Unset: 120 s, or LEADER_STALE_TICKS ticks when that is longer.
    scheduler_leader_stale_s: float | None = None
    schedule_jitter_s: float = Field(default=30.0, ge=0)
    schedule_backoff_max_s: float = Field(default=6 * 3600.0, ge=0)
    # A scheduled dealer is stale once its second slot after its last success (or after it
    # went back on schedule) has passed by the jitter of both slots (cron), its typical run
    # (queued to finished, median of its last 5 successes) and this grace (jobs/freshness.py):
    # what a run that is merely late (a backlog, a retry) may take without paging anyone.
    stale_grace_s: float = Field(default=900.0, ge=0)
    log_level: str = "INFO"
    # Log lines: "json" (one object per line, with job_id and dealership_id) or "text".
    log_format: str = "json"
    # The demo serves its fixture sites from this port up (fixtures/demo.toml's when unset).
    demo_port: int | None = Field(default=None, ge=1, le=65535)
    # Feeds: the decompressed size at which reading stops (compression bombs, runaway feeds),
    # the largest download, the largest single field or JSON record, rows per store batch,
    # and HTTP fetching (timeout per connect and per read, attempts with exponential backoff,
    # and a deadline for the whole download, retries included: a server trickling bytes
    # under the read timeout would otherwise hold a worker for days).
    feed_max_bytes: int = Field(default=8 * 1024**3, ge=1)
    feed_max_download_bytes: int = Field(default=2 * 1024**3, ge=1)
    feed_max_record_chars: int = Field(default=4 * 1024 * 1024, ge=1)
    feed_batch_size: int = Field(default=5000, ge=1)
    feed_fetch_timeout_s: float = Field(default=60.0, gt=0)
    feed_fetch_attempts: int = Field(default=4, ge=1)
    feed_fetch_backoff_s: float = Field(default=1.0, ge=0)
    feed_fetch_deadline_s: float = Field(default=900.0, gt=0)
    # Worker processes for a large feed's per-row stages (0: none), started once this many
    # rows have taken the full path, or at the first row that does in a feed file of at
    # least feed_stage_min_bytes (a small feed is not worth the processes' start-up).
    feed_stage_processes: int = Field(default=1, ge=0)
    feed_stage_min_rows: int = Field(default=20_000, ge=0)
    feed_stage_min_bytes: int = Field(default=16 * 1024**2, ge=0)
    # Quality webhooks (a dealer's webhook_url hears of runs that are not healthy): timeout
    # per POST, attempts, and the first backoff between attempts (doubling).
    webhook_timeout_s: float = Field(default=3.0, gt=0)
    webhook_attempts: int = Field(default=3, ge=1)
    webhook_backoff_s: float = Field(default=0.2, ge=0)
    # HTTP API (`forecourt api`).
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)  # 0: any free port
    api_workers: int = Field(default=1, ge=1)
    # Per token: at most api_rate_limit requests in each api_rate_window_s window (in Redis).
    api_rate_limit: int = Field(default=600, ge=1)
    api_rate_window_s: int = Field(default=60, ge=1)
    # Per client address (IPv6: per /64): after api_auth_fail_limit requests with an unknown
    # or revoked token in an api_auth_fail_window_s window, every request with a token from
    # there answers 429 until the window ends, without a look-up (in Redis; 0: no limit).
    api_auth_fail_limit: int = Field(default=60, ge=0)
    api_auth_fail_window_s: int = Field(default=60, ge=1)
    # Peers trusted to name the client in X-Forwarded-For (reverse proxies, load balancers):
    # addresses or CIDR networks, comma-separated, as uvicorn's FORWARDED_ALLOW_IPS (the
    # conventional name, read too); "*" trusts any peer, "" none. Others are the client.
    forwarded_allow_ips: str = Field(
        default="127.0.0.1,::1",
        validation_alias=AliasChoices("FORWARDED_ALLOW_IPS", "FORECOURT_FORWARDED_ALLOW_IPS"))
    api_max_body_bytes: int = Field(default=16 * 1024, ge=1)
    # A request's body must arrive whole within this many seconds of its start (408 if not).
    api_body_timeout_s: float = Field(default=10.0, gt=0)
    # A long poll's `wait` holds at most this long. The API refuses `wait` over 30 (its
    # OpenAPI bound), so only a lower cap means anything; a higher one is refused.
    api_wait_max_s: float = Field(default=30.0, ge=0, le=30)
    # Async PostgreSQL connections per API process (waiters hold none).
    api_pool_size: int = Field(default=10, ge=1)
    # How long a request waits for a database connection (none free, or PostgreSQL not
    # answering) before it answers 503 `unavailable`.
    api_pool_timeout_s: float = Field(default=10.0, gt=0)
    # Origins of the dealer UI allowed by CORS (none: CORS off).
    api_cors_origins: list[str] = Field(default_factory=list)
    # /metrics reads job figures from the database at most this often per process.
    api_metrics_cache_s: float = Field(default=5.0, ge=0)
    # The bearer token(s) Prometheus presents to read /metrics (operator API tokens may too;
    # unset: operator tokens only, never an open page): several, comma- or
    # whitespace-separated, while a rotation is under way. Secrets: never echoed.
    api_metrics_token: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    # Token records are cached per process this long (revocations evict them at once).
    api_token_cache_s: float = Field(default=60.0, ge=0)

    # Checks beyond each field's type and bounds. Their messages name the variable's fix;
    # crawler/config_errors.py turns any failure into one line naming the variable.
    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.strip().upper() not in LOG_LEVELS:
            raise ValueError("should be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value.strip().upper()

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value.strip().lower() not in ("json", "text"):
            raise ValueError("should be json or text")
        return value.strip().lower()

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None  # empty: the embedded server
        value = value.strip()
        if "://" in value:
            scheme = value.split("://", 1)[0].lower()
            if scheme not in ("postgresql", "postgres"):
                raise ValueError(f"is not a PostgreSQL URL (its scheme is {scheme!r})")
            return value
        from psycopg import ProgrammingError
        from psycopg.conninfo import conninfo_to_dict

        try:
            conninfo_to_dict(value)
        except ProgrammingError:
            raise ValueError("is neither a postgresql:// URL nor a 'host=... dbname=...' "
                             "connection string") from None
        return value

    @field_validator("api_metrics_token", mode="before")
    @classmethod
    def _api_metrics_token(cls, value: object) -> tuple[SecretStr, ...]:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, list | tuple):  # given in code, not read from the environment
            value = ",".join(v.get_secret_value() if isinstance(v, SecretStr) else str(v)
                             for v in value)
        if value is None or not str(value).strip():
            return ()  # empty: not set (operator tokens only)
        # trimmed (a file's trailing newline, say); commas or whitespace between tokens
        entries = [entry.strip() for entry in str(value).strip().split(",")]
        if "" in entries:
            raise ValueError("has an empty entry (tokens are separated by one comma or by "
                             "whitespace)")
        tokens = [token for entry in entries for token in entry.split()]
        for n, token in enumerate(tokens, 1):
            which = f"(token {n} of {len(tokens)}) " if len(tokens) > 1 else ""
            if not all("!" <= c <= "~" for c in token):
                raise ValueError(f"{which}may hold only printable ASCII (it is sent as "
                                 "`Authorization: Bearer <token>`)")
            if len(token) < METRICS_TOKEN_MIN_CHARS:
                raise ValueError(f"{which}is {len(token)} characters long, too short for a "
                                 f"secret anyone who reaches the API may guess at (at least "
                                 f"{METRICS_TOKEN_MIN_CHARS})")
        return tuple(SecretStr(token) for token in tokens)

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _forwarded_allow_ips(cls, value: str) -> str:
        import ipaddress

        items = [item.strip() for item in value.split(",") if item.strip()]
        for item in items:
            if item == "*":
                continue
            try:
                ipaddress.ip_network(item) if "/" in item else ipaddress.ip_address(item)
            except ValueError:
                # uvicorn would take it for a name no peer has, and trust nobody, silently
                raise ValueError(f"lists {item!r}, which is neither an IP address nor a CIDR "
                                 "network (without host bits)") from None
        return ",".join(items)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        parts = urlsplit(value)
        if "://" not in value or parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("is not a Redis URL")
        dbs = parse_qs(parts.query).get("db", [])
        if parts.scheme != "unix" and parts.path.strip("/"):
            dbs.append(parts.path.strip("/"))
        for db in dbs:
            if not db.isdigit():
                raise ValueError(f"names database {db!r}, which is not a database number")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        beat = self.job_beat_interval_s
        for name, limit in (("FORECOURT_JOB_STALE_AFTER_S", self.job_stale_after_s),
                            ("FORECOURT_JOB_REAP_AFTER_S", self.job_reap_after_s)):
            if beat >= limit:
                raise ValueError(f"FORECOURT_JOB_BEAT_INTERVAL_S ({beat:g}) is not below "
                                 f"{name} ({limit:g}): a running job would look abandoned "
                                 "between heartbeats and be run twice")
        if self.job_min_backoff_s > self.job_max_backoff_s:
            raise ValueError(f"FORECOURT_JOB_MIN_BACKOFF_S ({self.job_min_backoff_s:g}) is "
                             f"above FORECOURT_JOB_MAX_BACKOFF_S ({self.job_max_backoff_s:g})")
        return self

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


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# FORECOURT_API_METRICS_TOKEN's shortest length: `openssl rand -hex 32` gives 64.
METRICS_TOKEN_MIN_CHARS = 32

# A healthy leader is silent for a tick (and its Redis calls) between passes.
LEADER_STALE_TICKS = 4


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment; a bad value raises ConfigError, one line naming the
    variable and the fix."""
    try:
        return Settings()
    except (ValidationError, SettingsError) as exc:
        from crawler.config_errors import explain

        raise explain(exc) from None


def reset_settings() -> None:
    """Forget cached settings (tests change the environment)."""
    get_settings.cache_clear()
