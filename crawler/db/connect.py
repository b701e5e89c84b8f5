"""Where the database and Redis are, and how to open a connection."""

from __future__ import annotations

import re
from functools import lru_cache

import psycopg
from psycopg.rows import dict_row

from crawler import embedded
from crawler.config import get_settings
from crawler.errors import ConfigError


@lru_cache(maxsize=1)
def database_url() -> str:
    """DATABASE_URL when set, else the embedded PostgreSQL (started on demand)."""
    settings = get_settings()
    return settings.database_url or embedded.postgres_url(settings.data_dir)


@lru_cache(maxsize=1)
def redis_url() -> str:
    """REDIS_URL when set, else the embedded Redis (started on demand)."""
    settings = get_settings()
    return settings.redis_url or embedded.redis_url(settings.data_dir)


def sibling(conn: psycopg.Connection) -> psycopg.Connection:
    """A second connection to the same database as `conn`, set up like `connect`'s."""
    return psycopg.connect(conn.info.dsn, password=conn.info.password, autocommit=True,
                           row_factory=dict_row, connect_timeout=10, options="-c jit=off")


def forget_urls() -> None:
    database_url.cache_clear()
    redis_url.cache_clear()


def connect(url: str | None = None, **kwargs) -> psycopg.Connection:
    """An autocommit connection with dict rows; use `conn.transaction()` for atomic work.

    JIT compilation is off: forecourt's statements are batch lookups and upserts whose
    plans cross the JIT cost threshold on large tables but run in milliseconds, and
    compiling them cost more than running them."""
    target = url or database_url()
    kwargs.setdefault("options", "-c jit=off")
    kwargs.setdefault("connect_timeout", 10)
    try:
        return psycopg.connect(target, autocommit=True, row_factory=dict_row, **kwargs)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = re.sub(r"FATAL:\s+", "", first)
        raise ConfigError(f"cannot connect to PostgreSQL: {first}",
                          hint=_connect_hint(first)) from exc


_CHECK = "check DATABASE_URL, or unset it to use the embedded server"


def _connect_hint(message: str) -> str:
    """The fix for the commonest ways a connection is refused, else where to look."""
    missing = re.search(r'database "([^"]+)" does not exist', message)
    if missing:
        return (f"create it with `createdb {missing.group(1)}`, or fix the database name in "
                "DATABASE_URL")
    if "password authentication failed" in message:
        return "fix the password in DATABASE_URL: postgresql://USER:PASSWORD@HOST:5432/DB"
    if "no password supplied" in message:
        return ("the server wants a password: put it in DATABASE_URL, "
                "postgresql://USER:PASSWORD@HOST:5432/DB, or in ~/.pgpass")
    if "does not support SSL" in message:
        return ("the server has no TLS: drop sslmode=require from DATABASE_URL, or turn on "
                "ssl in the server")
    if "Connection refused" in message or "No such file or directory" in message:
        return "start PostgreSQL, or " + _CHECK
    return _CHECK
