"""The embedded servers: started on demand in a data directory, and really stopped."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import psutil
import psycopg
import redis

from crawler import embedded
from crawler.config import PROJECT_ROOT
from crawler.embedded import files


def _postmaster_pid(data_dir) -> int:
    return int((data_dir / "postgres" / "postmaster.pid").read_text().splitlines()[0])


def _gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_embedded_servers_start_answer_and_stop(tmp_path):
    """On a path with a space (pgserver handed it to the server unquoted: it never started),
    stopped for real (Redis had only been sent SIGTERM: a start right after could meet it
    still writing), the queue kept, and started again over a postmaster.pid that a reboot
    left naming a live process of someone else's (it was taken for the running server)."""
    data_dir = tmp_path / "data dir"
    data_dir.mkdir()
    pg_url, redis_url = embedded.postgres_url(data_dir), embedded.redis_url(data_dir)
    try:
        with psycopg.connect(pg_url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert redis.Redis.from_url(redis_url).ping()
        redis.Redis.from_url(redis_url).rpush("queued", "job-1")
        postmaster = psutil.Process(_postmaster_pid(data_dir))
        redis_server = psutil.Process(int((data_dir / "redis" / "redis.pid").read_text()))
        running = embedded.status(data_dir)
        assert f"pid {postmaster.pid}" in running["PostgreSQL"]
        assert f"pid {redis_server.pid}" in running["Redis"]
    finally:
        assert embedded.stop(data_dir) == ["PostgreSQL", "Redis"]
    assert _gone(postmaster) and _gone(redis_server)  # stopped, not just signalled
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    assert embedded.status(data_dir) == {"PostgreSQL": None, "Redis": None}
    # a reboot: the old pid file names a PID some other live process now has
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        (data_dir / "postgres" / "postmaster.pid").write_text(
            f"{bystander.pid}\n{data_dir / 'postgres'}\n1700000000\n5432\n"
            f"{data_dir / 'postgres'}\n\n  1234 5678\nready\n")
        # and on demand again, by the next process, with its data kept
        again = subprocess.run(
            [sys.executable, "-c", AGAIN, str(data_dir)], capture_output=True, text=True,
            timeout=120, cwd=PROJECT_ROOT)
        assert again.returncode == 0, again.stderr[-2000:]
        assert again.stdout.split() == ["1", "job-1"], again.stderr[-2000:]
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    # started by one process and stopped by another that never started them (`forecourt db
    # stop`), where XDG_RUNTIME_DIR is unset (root in a container, cron): quietly
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    started, quiet = (subprocess.run(
        [sys.executable, "-W", "default", "-c", script, str(data_dir)], capture_output=True,
        text=True, timeout=120, cwd=PROJECT_ROOT, env=env) for script in (START, STOP))
    assert started.returncode == 0, started.stderr[-2000:]
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr[-2000:]
    assert not (data_dir / "postgres" / "postmaster.pid").exists()


START = """
import sys
from pathlib import Path
from crawler import embedded
embedded.postgres_url(Path(sys.argv[1]))
"""
STOP = """
import sys
from pathlib import Path
from crawler import embedded
embedded.stop(Path(sys.argv[1]))
"""


AGAIN = """
import sys
from pathlib import Path
import psycopg
from crawler import embedded
from crawler.config import PROJECT_ROOT
import redis
data_dir = Path(sys.argv[1])
try:
    with psycopg.connect(embedded.postgres_url(data_dir)) as conn:
        print(conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'forecourt'"
                           ).fetchone()[0])
    print(redis.Redis.from_url(embedded.redis_url(data_dir)).lpop("queued").decode())
finally:
    embedded.stop(data_dir)
"""


def test_a_data_directory_too_deep_for_unix_sockets_still_works(tmp_path):
    """`<data dir>/postgres/.s.PGSQL.5432` longer than 107 bytes: PostgreSQL did not start
    (pgserver's fallback lay inside the same deep path) and Redis bound a cut socket path no
    client found, leaving one orphaned redis-server per attempt."""
    data_dir = tmp_path / ("d" * max(1, 110 - len(str(tmp_path))))
    assert len(str(data_dir / "postgres" / ".s.PGSQL.5432")) > 107
    try:
        with psycopg.connect(embedded.postgres_url(data_dir)) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert redis.Redis.from_url(embedded.redis_url(data_dir)).ping()
    finally:
        assert embedded.stop(data_dir) == ["PostgreSQL", "Redis"]
        for server in ("postgres", "redis"):
            shutil.rmtree(files.short_socket_dir(data_dir, server), ignore_errors=True)
