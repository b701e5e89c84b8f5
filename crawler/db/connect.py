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


# TCP keepalives on both ends of every connection: (idle, interval, count) in seconds, seconds
# and probes, plus a user timeout for data left unacknowledged. A peer that vanished (power,
# network) is then noticed in about a minute, not after the operating system's defaults (two
# hours of silence on an idle connection, ~15 minutes of retransmissions on a busy one): the
# server ends a vanished worker's session, releasing the row locks its open transaction
# held, and a worker, the scheduler or the API's job listener finds its connection gone and
# opens another instead of waiting on it for ever. (Ignored on a Unix socket.)
KEEPALIVE = (20, 10, 3)
USER_TIMEOUT_MS = 60_000


def session_params(url: str) -> dict:
    """What forecourt adds to a connection to `url`, unless the URL sets it itself: a connect
    timeout, JIT off (see `connect`) and the keepalives (see KEEPALIVE). The URL's own
    `options` come after forecourt's, so its settings win."""
    from psycopg.conninfo import conninfo_to_dict

    given = conninfo_to_dict(url)
    idle, interval, count = KEEPALIVE
    params = {k: v for k, v in {
        "connect_timeout": 10, "keepalives": 1, "keepalives_idle": idle,
        "keepalives_interval": interval, "keepalives_count": count,
        "tcp_user_timeout": USER_TIMEOUT_MS}.items() if k not in given}
    server = (f"-c jit=off -c tcp_keepalives_idle={idle} -c tcp_keepalives_interval={interval}"
              f" -c tcp_keepalives_count={count} -c tcp_user_timeout={USER_TIMEOUT_MS}")
    params["options"] = f"{server} {given['options']}" if given.get("options") else server
    return params


def sibling(conn: psycopg.Connection) -> psycopg.Connection:
    """A second connection to the same database as `conn`, set up like `connect`'s."""
    dsn = conn.info.dsn
    return psycopg.connect(dsn, password=conn.info.password, autocommit=True,
                           row_factory=dict_row, **session_params(dsn))


def forget_urls() -> None:
    database_url.cache_clear()
    redis_url.cache_clear()


def connect(url: str | None = None, **kwargs) -> psycopg.Connection:
    """An autocommit connection with dict rows; use `conn.transaction()` for atomic work.

    JIT compilation is off: forecourt's statements are batch lookups and upserts whose
    plans cross the JIT cost threshold on large tables but run in milliseconds, and
    compiling them cost more than running them. TCP keepalives: see KEEPALIVE."""
    target = url or database_url()
    kwargs = {**session_params(target), **kwargs}
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
