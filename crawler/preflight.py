"""Checks a command makes before it starts work that would otherwise fail later, job after job:
the data directory can be written, Redis answers, Chromium is there. Each failure is a
ConfigError whose one line names the variable to fix (the CLI prints it; no traceback); a
missing Chromium is only a warning line."""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from crawler.errors import ConfigError

DATA_DIR_HINT = "set FORECOURT_DATA_DIR to a directory this user can write"
REDIS_HINT = "check REDIS_URL, or unset it to use the embedded server"


def data_dir() -> Path:
    """The data directory, created if missing, once a file could be written in it (crawl logs
    and feed downloads go there)."""
    from crawler.config import get_settings

    path = Path(get_settings().data_dir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = "it is a file, not a directory" if isinstance(exc, FileExistsError) \
            else exc.strerror or type(exc).__name__
        raise ConfigError(f"the data directory FORECOURT_DATA_DIR={path} is not usable: "
                          f"{reason}", hint=DATA_DIR_HINT) from None
    return path


def where(url: str) -> str:
    """Where a Redis URL points, without its password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"


def _db(url: str) -> str:
    from urllib.parse import parse_qs

    parts = urlsplit(url)
    return (parse_qs(parts.query).get("db") or [parts.path.strip("/") or "0"])[0]


def redis(url: str, unreachable_ok: bool = False) -> str | None:
    """Ping Redis at `url`. A server that answers but cannot be used (password, database
    number, TLS) raises ConfigError; so does one that does not answer, unless
    `unreachable_ok`, when the reason is returned for the caller to warn with."""
    import redis as redis_lib
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    at = where(url)
    tls = urlsplit(url).scheme == "rediss"
    try:
        client = redis_lib.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5,
                                          retry=Retry(NoBackoff(), 0))
    except ValueError as exc:  # settings check the URL's form; this is the last word
        raise ConfigError(f"REDIS_URL is not usable: {exc}", hint=REDIS_HINT) from None
    try:
        client.ping()
        return None
    except redis_lib.AuthenticationError:
        has_password = bool(urlsplit(url).password)
        raise ConfigError(
            f"Redis at {at} refused the password in REDIS_URL" if has_password else
            f"Redis at {at} needs a password and REDIS_URL has none",
            hint="put it in REDIS_URL: redis://:PASSWORD@HOST:PORT/0, or "
                 "redis://USER:PASSWORD@HOST:PORT/0 for an ACL user") from None
    except redis_lib.ResponseError as exc:
        if "DB index" in str(exc):
            raise ConfigError(f"Redis at {at} has no database {_db(url)} (REDIS_URL)",
                              hint="use a database number the server has: 0-15 on a "
                                   "default server") from None
        raise ConfigError(f"Redis at {at} answered REDIS_URL's client with an error: {exc}",
                          hint=REDIS_HINT) from None
    except (redis_lib.ConnectionError, redis_lib.TimeoutError, OSError) as exc:
        reason = str(exc).strip().rstrip(".") or type(exc).__name__
        if tls:
            raise ConfigError(f"cannot connect to Redis at {at} with TLS (rediss://): "
                              f"{reason}", hint="a server without TLS needs redis://, not "
                                                "rediss://; else " + REDIS_HINT) from None
        if unreachable_ok:
            return f"cannot connect to Redis at {at}: {reason}"
        raise ConfigError(f"cannot connect to Redis at {at} (REDIS_URL): {reason}",
                          hint="start Redis, or " + REDIS_HINT) from None
    except redis_lib.RedisError as exc:
        raise ConfigError(f"Redis at {at} (REDIS_URL) cannot be used: "
                          f"{str(exc) or type(exc).__name__}", hint=REDIS_HINT) from None
    finally:
        client.close()


def chromium() -> str | None:
    """A warning line when there is no Chromium this user can run (FORECOURT_CHROMIUM_PATH,
    else /usr/bin/chromium or `chromium` on PATH), else None. Only a warning: plain-HTTP
    dealers and feeds need no browser; a crawl that must render a page is handed on to a live
    worker that has Chromium, or with none fails at once, permanently, with the same fix
    (crawler/spider.py, jobs/failures.py)."""
    from crawler import browser

    try:
        browser.chromium_path()
        return None
    except ConfigError as exc:
        return (f"{exc}: crawls that must render pages (JavaScript sites) go to a worker "
                f"that has Chromium, or fail without retries if none is running ({exc.hint})")


def listen(host: str, port: int) -> None:
    """Refuse an address the API could not listen on (port in use, not this machine's,
    privileged) before it says it serves there; uvicorn would log it and exit 3."""
    import errno
    import socket

    if port == 0:
        return
    host_fix = "set FORECOURT_API_HOST or --host to an address of this machine, or 0.0.0.0 for all"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}",
                          hint=host_fix) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind(address)
        except OSError as exc:
            hint = {errno.EADDRINUSE: "stop what listens there, or set FORECOURT_API_PORT "
                                      "or --port to a free port",
                    errno.EACCES: "ports below 1024 need privileges: set FORECOURT_API_PORT "
                                  "or --port to 1024 or more"}.get(exc.errno, host_fix)
            raise ConfigError(f"cannot listen on {host}:{port}: "
                              f"{(exc.strerror or str(exc)).lower()}", hint=hint) from None
