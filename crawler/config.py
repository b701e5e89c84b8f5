"""Configuration, read in one place: environment variables and their defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
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
    # Chromium for JavaScript sites (Playwright cannot download its own browser here).
    chromium_path: str | None = None
    # Crawl subprocess limit, seconds.
    crawl_time_limit_s: int = 30 * 60
    log_level: str = "INFO"
    # The demo serves its fixture sites from this port up (fixtures/demo.toml's when unset).
    demo_port: int | None = None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests change the environment)."""
    get_settings.cache_clear()
