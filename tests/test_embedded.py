"""The embedded servers: started on demand in a data directory, and really stopped."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import psycopg
import redis

from crawler import embedded
from crawler.config import PROJECT_ROOT


def _postmaster_pid(data_dir) -> int:
    return int((data_dir / "postgres" / "postmaster.pid").read_text().splitlines()[0])


def test_embedded_servers_start_answer_and_stop(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    pg_url, redis_url = embedded.postgres_url(data_dir), embedded.redis_url(data_dir)
    try:
        with psycopg.connect(pg_url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert redis.Redis.from_url(redis_url).ping()
        postmaster = psutil.Process(_postmaster_pid(data_dir))
        redis_server = psutil.Process(int((data_dir / "redis" / "redis.pid").read_text()))
    finally:
        embedded.stop(data_dir)
    postmaster.wait(timeout=30)
    redis_server.wait(timeout=30)
    assert not postmaster.is_running() and not redis_server.is_running()
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    # and on demand again, by the next process, with its data kept
    again = subprocess.run(
        [sys.executable, "-c", AGAIN, str(data_dir)], capture_output=True, text=True,
        timeout=120, cwd=PROJECT_ROOT)
    assert again.returncode == 0 and again.stdout.strip() == "1", again.stderr[-2000:]
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
data_dir = Path(sys.argv[1])
try:
    with psycopg.connect(embedded.postgres_url(data_dir)) as conn:
        print(conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'forecourt'"
                           ).fetchone()[0])
finally:
    embedded.stop(data_dir)
"""
