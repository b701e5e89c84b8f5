"""Job-queue fixtures: short timings, real `forecourt worker`/`scheduler` processes, sites.

Workers and schedulers are started as subprocesses with the session's environment (its
database, Redis namespace and data directory) plus the short backoffs and heartbeats below.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from crawler.config import PROJECT_ROOT

GENERIC = PROJECT_ROOT / "fixtures" / "sites" / "generic"
FORECOURT = str(Path(sys.executable).parent / "forecourt")
EXPECTED_VINS = {
    "19XFC2F7XME104512", "2T3P1RFV7PC338201", "1FTFW1E8XNFA20418", "3GNAXKEG2RS112233",
    "3VW6T7AU3KM022910", "4S4BTACC1L3210987", "KM8JBCD16RU412377", "W1KAF4HB3MR023456",
    "1C4HJXDG2NW150034", "JN8BT3BB7NW300112",
}

FAST = {
    "FORECOURT_JOB_MIN_BACKOFF_S": "0.2",
    "FORECOURT_JOB_MAX_BACKOFF_S": "0.5",
    "FORECOURT_JOB_MAX_ATTEMPTS": "3",
    "FORECOURT_JOB_BROKER_HEARTBEAT_MS": "3000",
    "FORECOURT_JOB_BROKER_MAINTENANCE_CHANCE": "1000000",
    "FORECOURT_JOB_STALE_AFTER_S": "2",
    "FORECOURT_JOB_BEAT_INTERVAL_S": "0.25",
    "FORECOURT_JOB_REAP_AFTER_S": "60",
    "FORECOURT_SCHEDULER_TICK_S": "0.25",
    "FORECOURT_SCHEDULE_JITTER_S": "0",
    "FORECOURT_LOG_FORMAT": "text",
}


@pytest.fixture(scope="session")
def job_env(forecourt_env):
    """The environment of every worker/scheduler the tests start: the session's servers
    plus the short timings above (this process's own environment is left alone)."""
    from crawler.db import redis_url

    return {**os.environ, **FAST, "REDIS_URL": redis_url()}


def _spawn(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        proc = subprocess.Popen([FORECOURT, *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=str(PROJECT_ROOT), start_new_session=True)
    proc.log = log
    return proc


def _ready(proc: subprocess.Popen, ready: str, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while ready not in proc.log.read_text(errors="replace"):
        assert proc.poll() is None, proc.log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, "not ready: " + \
            proc.log.read_text(errors="replace")[-3000:]
        time.sleep(0.1)


@contextmanager
def _process(args: list[str], env: dict, log: Path, ready: str | None, timeout: float = 40):
    proc = _spawn(args, env, log)
    try:
        if ready is not None:
            _ready(proc, ready, timeout)
        yield proc
    finally:
        stop(proc, signal.SIGKILL)  # its work is over; a graceful stop only costs time


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop a started process group (SIGTERM, then SIGKILL)."""
    if proc.poll() is None and sig != signal.SIGKILL:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


WORKER_READY = "Worker process is ready for action"


@pytest.fixture
def start_workers(job_env, tmp_path):
    """Start `forecourt worker` processes (at once), with `env` on top of the session's, and
    wait until each is ready; every one is killed at the end of the test."""
    started: list[subprocess.Popen] = []

    def start(count: int = 1, processes: int = 1, threads: int = 2,
              **env: str) -> list[subprocess.Popen]:
        procs = [_spawn(["worker", "--processes", str(processes), "--threads", str(threads)],
                        {**job_env, **env}, tmp_path / f"worker-{len(started) + i}.log")
                 for i in range(count)]
        started.extend(procs)
        for proc in procs:
            _ready(proc, WORKER_READY)
        return procs

    yield start
    for proc in started:
        stop(proc, signal.SIGKILL)


@pytest.fixture(scope="module")
def shared_worker(job_env, tmp_path_factory):
    """One worker (1 process x 3 threads) for a whole test module."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with _process(["worker", "--processes", "1", "--threads", "3"], job_env, log,
                  WORKER_READY) as proc:
        yield proc


@pytest.fixture
def start_schedulers(job_env, tmp_path):
    """Start `forecourt scheduler` processes (at once), with `env` on top of the session's;
    killed at the end of the test."""
    started: list[subprocess.Popen] = []

    def start(count: int = 1, **env: str) -> list[subprocess.Popen]:
        procs = [_spawn(["scheduler"], {**job_env, **env},
                        tmp_path / f"scheduler-{len(started) + i}.log")
                 for i in range(count)]
        started.extend(procs)
        for proc in procs:
            _ready(proc, "scheduler: ticking")
        return procs

    yield start
    for proc in started:
        stop(proc, signal.SIGKILL)


def site_copy(tmp_path: Path, routes: dict, name: str = "site", sitemaps: bool = True) -> Path:
    """The generic fixture site with its own routes.json (failures, delays). Without
    sitemaps its listing pages are the only way in, so a failing listing fails the crawl."""
    target = tmp_path / name
    shutil.copytree(GENERIC, target)
    (target / "routes.json").write_text(json.dumps(routes))
    if not sitemaps:
        robots = target / "robots.txt"
        robots.write_text("".join(line for line in robots.read_text().splitlines(True)
                                  if not line.lower().startswith("sitemap")))
    return target


DETAIL_PATHS = sorted(
    "/inventory/" + p.stem for p in (GENERIC / "inventory").glob("*.html") if p.stem != "index")


def slow_routes(delay_s: float, step_s: float = 0.0) -> dict:
    """Vehicle pages answer after `delay_s` (plus `step_s` more for each further page, so
    vehicles trickle in): a crawl that takes a while."""
    return {path: {"delay_s": delay_s + i * step_s} for i, path in enumerate(DETAIL_PATHS)}


# A dealer's settings for a crawl that requests every slow page at once: it takes about the
# slowest page's delay, where AutoThrottle (on by default) spaces the requests by half the
# pages' latency and turns 10 pages of 2.5 s into a crawl of some 15 s.
AT_ONCE = {"scrapy": {"AUTOTHROTTLE_ENABLED": False, "CONCURRENT_REQUESTS_PER_DOMAIN": 16}}


def wait_for(predicate, timeout: float = 30, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


def wait_final(conn, job_id: int, timeout: float = 60):
    from crawler.db import jobs as jobs_db
    from crawler.models import FINAL_STATES

    def settled():
        job = jobs_db.get(conn, job_id)
        if job.state not in FINAL_STATES:
            return None
        if job.state != "failed":  # no other end is ever left (crawler/db/job_queue.py)
            return job
        # A transiently failed attempt is `failed` for a moment before its worker requeues
        # it: an end is an end when it holds.
        time.sleep(0.6)
        again = jobs_db.get(conn, job_id)
        return again if again.updated_at == job.updated_at else None

    return wait_for(settled, timeout=timeout, what=f"job {job_id} to end")


def end_now(conn, jobs) -> list:
    """Cancel those of `jobs` still running and return each one's final record. For a test
    that needs of its long crawls only that they were still running at some point: a crawl
    that ended first keeps its own end, the others end now (`finished_at`: now), instead of
    the test waiting out the rest of their slow pages."""
    from crawler.errors import InvalidInput
    from jobs import service

    for job in jobs:
        try:
            service.cancel(conn, job.id)
        except InvalidInput:  # it had ended already
            pass
    return [wait_final(conn, job.id) for job in jobs]
