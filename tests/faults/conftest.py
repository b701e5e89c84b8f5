"""Fault tests: real worker processes, throwaway servers to restart, fixture sites.

Tests here change FORECOURT_* variables for child processes; the parent's cached settings
are re-read from the restored environment after each test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crawler.config import PROJECT_ROOT, reset_settings

FORECOURT = str(Path(sys.executable).parent / "forecourt")

# Short heartbeats, backoffs and reaping, so a fault plays out in seconds.
FAST = {
    "FORECOURT_JOB_MIN_BACKOFF_S": "0.5",
    "FORECOURT_JOB_MAX_BACKOFF_S": "1",
    "FORECOURT_JOB_MAX_ATTEMPTS": "4",
    "FORECOURT_JOB_BROKER_HEARTBEAT_MS": "3000",
    "FORECOURT_JOB_BROKER_MAINTENANCE_CHANCE": "1000000",
    "FORECOURT_JOB_STALE_AFTER_S": "2",
    "FORECOURT_JOB_BEAT_INTERVAL_S": "0.25",
    "FORECOURT_JOB_REAP_AFTER_S": "6",
    "FORECOURT_JOB_RESEND_AFTER_S": "3",
    "FORECOURT_LOG_FORMAT": "text",
}


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch):
    yield
    monkeypatch.undo()
    reset_settings()


@pytest.fixture(scope="session")
def fault_env(forecourt_env):
    """The session's environment (database, Redis, data dir) with fast job timings."""
    from crawler.db import redis_url

    env = dict(os.environ)
    env["REDIS_URL"] = redis_url()
    env.update(FAST)
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


@pytest.fixture
def workers(tmp_path):
    """Start `forecourt worker` processes with a given environment; all are killed at the
    end of the test."""
    started: list[subprocess.Popen] = []

    def start(env: dict, name: str = "worker", threads: int = 1) -> subprocess.Popen:
        log = tmp_path / f"{name}-{len(started)}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen([FORECOURT, "worker", "--processes", "1", "--threads",
                                     str(threads)], env=env, stdout=out,
                                    stderr=subprocess.STDOUT, cwd=str(PROJECT_ROOT),
                                    start_new_session=True)
        proc.log = log
        started.append(proc)
        deadline = time.monotonic() + 60
        while "Worker process is ready for action" not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.1)
        return proc

    yield start
    for proc in started:
        kill_group(proc)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a started process and everything in its session (its worker processes)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def wait_for(predicate, timeout: float = 60, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)
