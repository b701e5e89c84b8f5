"""Run one crawl job in a child process, watch it, and settle it if the child could not.

Used by `forecourt crawl` and by the job workers alike. The child settles the job itself
when the crawl ends; the parent settles it only when the child crashed, hung past its time
limit, or was cancelled.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from crawler.config import PROJECT_ROOT, get_settings
from crawler.db import connect, database_url, redis_url
from crawler.db import jobs as jobs_db
from crawler.lifeline import die_with_parent
from crawler.models import Job


def child_env() -> dict[str, str]:
    """The child sees the same servers the parent resolved, embedded or not."""
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url()
    env.setdefault("SCRAPY_SETTINGS_MODULE", "crawler.settings")
    try:
        env["REDIS_URL"] = redis_url()
    except Exception:  # the crawl itself can run without Redis
        pass
    return env


def run_crawl(job_id: int, *, time_limit_s: int | None = None,
              on_tick: Callable[[Job], None] | None = None,
              should_stop: Callable[[], bool] | None = None,
              owner: str | None = None, attempt: int | None = None) -> Job:
    """Run the job's crawl to its end and return the settled job record.

    The child's Scrapy log goes to `log_path(job_id)`. With `owner` (a job
    worker's name), the parent settles the job only while that worker still owns it. With
    `attempt` (the one the worker claimed), the child crawls and writes only as that attempt:
    taken over before it started (its worker stalled), it crawls nothing.
    """
    settings = get_settings()
    limit = time_limit_s or settings.crawl_time_limit_s
    path = log_path(job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "crawler.crawl_process", str(job_id),
             *([str(attempt)] if attempt is not None else [])],
            cwd=str(PROJECT_ROOT), env=child_env(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=die_with_parent,
        )
    try:
        return _watch_child(child, job_id, limit, path, on_tick, should_stop, owner)
    finally:
        if child.poll() is None:
            # the watch itself failed (its database out of reach past its bound, say): a crawl
            # no one watches must not go on writing beside the retry that will replace it
            _kill(child, hard=True)


def _watch_child(child: subprocess.Popen, job_id: int, limit: int, path: Path,
                 on_tick: Callable[[Job], None] | None,
                 should_stop: Callable[[], bool] | None, owner: str | None) -> Job:
    deadline = time.monotonic() + limit
    reason = None
    # the terminal's progress reads on a connection of their own; a worker's watch
    # (should_stop) has its own, and reopens it when it is cut
    ticks = connect() if on_tick is not None else None
    try:
        while child.poll() is None:
            if time.monotonic() > deadline:
                reason = ("timeout", f"crawl exceeded its time limit of {limit} s")
            elif should_stop is not None and should_stop():
                reason = ("cancelled", "cancelled while running")
            if reason:
                # At once, not SIGTERM: a child shutting down gracefully would settle the job
                # itself (as a failed, incomplete run) before the reason is recorded. What it
                # stored stays; an unsettled run removes nothing.
                _kill(child, hard=True)
                break
            if ticks is not None and on_tick is not None:
                on_tick(jobs_db.get(ticks, job_id))
            try:  # a quarter second between looks, but back at once when the child exits
                child.wait(timeout=0.25)
            except subprocess.TimeoutExpired:
                pass
    finally:
        if ticks is not None:
            ticks.close()
    # A connection opened now, not one held through a crawl of many minutes (which a
    # restart or a blip may have cut meanwhile): the crawl has ended, and is settled here.
    with connect() as conn:
        job = jobs_db.get(conn, job_id)
        if job.state == "running" and (owner is None or job.worker == owner):
            if reason and reason[0] == "cancelled":
                job = jobs_db.finish(conn, job_id, "cancelled", counters=job.counters,
                                     error=reason[1], error_kind="cancelled")
            elif reason:
                job = jobs_db.finish(conn, job_id, "failed", counters=job.counters,
                                     error=reason[1], error_kind=reason[0])
            else:
                job = jobs_db.finish(conn, job_id, "failed", counters=job.counters,
                                     error=f"crawl process died (exit code {child.returncode});"
                                           f" {_last_error(path)}",
                                     error_kind="crash")
    if on_tick is not None:
        on_tick(job)
    return job


def log_path(job_id: int) -> Path:
    """`<data dir>/logs/<database>/job-<id>.log`: job ids are per database, and several
    databases (a test run's, a second deployment's) may share one data dir."""
    return get_settings().data_dir / "logs" / database_tag() / f"job-{job_id}.log"


def database_tag() -> str:
    """The database's name and a short hash of where it is (host, port, name; never its
    credentials), safe as a directory name: `forecourt-1a2b3c4d`."""
    where = conninfo_to_dict(database_url())
    place = f"{where.get('host', '')}:{where.get('port', '')}/{where.get('dbname', '')}"
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(where.get("dbname") or "db"))[:40]
    return f"{name}-{hashlib.sha256(place.encode()).hexdigest()[:8]}"


_EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(:.*)?$")  # `module.SomeError: message`


def _last_error(path: Path) -> str:
    """The last error of a crawl log, for the job's error message: the exception line that
    ends the last traceback (`module.SomeError: message`), else the last line that looks
    like an error, else the last line."""
    try:
        lines = path.read_text(errors="replace").splitlines()[-400:]
    except OSError:
        return "no log"
    raised, in_traceback = None, False
    for line in lines:
        if "Traceback (most recent call last):" in line:
            in_traceback = True
        elif in_traceback and _EXCEPTION_LINE.match(line):
            # the traceback's first unindented line naming a class: its exception
            raised, in_traceback = line, False
    if raised:
        return raised[:300]
    errors = [ln for ln in lines if "ERROR" in ln or "Error" in ln or "Traceback" in ln]
    return (errors[-1] if errors else (lines[-1] if lines else "empty log"))[-300:]


def _kill(child: subprocess.Popen, hard: bool = False) -> None:
    if hard:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child.wait()
        return
    try:
        os.killpg(child.pid, signal.SIGTERM)
        child.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child.wait()
