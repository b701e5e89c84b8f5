"""One attempt of a job, in the worker: a crawl in its child process, or a feed ingest here.

The worker that claimed the job heartbeats its record while the attempt runs, stops when the
job is cancelled or no longer its own (taken over after the worker looked dead), and leaves
the record settled (the crawl child or the feed loop settles it; we settle it otherwise).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable

import psycopg

from crawler.config import get_settings
from crawler.crawl_runner import run_crawl
from crawler.db import connect
from crawler.db import jobs as jobs_db
from crawler.errors import ConfigError, InvalidInput
from crawler.models import Dealership, Job

log = logging.getLogger("forecourt.jobs")


class Stopped(Exception):
    """Raised inside a feed ingest when its job was cancelled or taken over."""


def watch(conn: psycopg.Connection, job_id: int, worker: str,
           on_settled: Callable[[Job], None] | None = None):
    """A should_stop callable that heartbeats the job at most once per beat interval.
    Returns (callable, state) where state["reason"] is 'cancelled' or 'lost' once stopping.
    `on_settled` sees the job as soon as the attempt has settled it (while the crawl child
    is still exiting), so a retry is decided before anyone reads the failure as final."""
    interval = get_settings().job_beat_interval_s
    state: dict = {"next": 0.0, "reason": None, "settled": False}

    def should_stop() -> bool:
        now = time.monotonic()
        if now < state["next"]:
            return False
        state["next"] = now + interval
        job = jobs_db.beat(conn, job_id, worker)
        if job is None:
            current = jobs_db.get(conn, job_id)
            if current.state == "running" or current.worker != worker:
                state["reason"] = "lost"  # taken over by another worker
            elif not state["settled"] and on_settled is not None:
                state["settled"] = True  # settled by the child, which is exiting
                on_settled(current)
        elif job.cancel_requested_at is not None:
            state["reason"] = "cancelled"
        return state["reason"] is not None

    return should_stop, state


def crawl(conn: psycopg.Connection, job: Job, dealer: Dealership, worker: str,
          on_settled: Callable[[Job], None] | None = None) -> Job:
    if not (job.params.get("url") or dealer.website_url):
        raise InvalidInput(f"dealership {dealer.slug!r} has no website URL",
                           hint=f"set one with `forecourt dealers set {dealer.slug} "
                                "--url URL`, or ingest its feed")
    limit = int(dealer.settings.get("time_limit_s") or get_settings().crawl_time_limit_s)
    should_stop, _ = watch(conn, job.id, worker, on_settled)
    return run_crawl(job.id, time_limit_s=limit, should_stop=should_stop, owner=worker)


def feed(conn: psycopg.Connection, job: Job, dealer: Dealership, worker: str,
         on_settled: Callable[[Job], None] | None = None) -> Job:
    source = job.params.get("source") or dealer.feed_url
    if not source:
        raise InvalidInput(f"dealership {dealer.slug!r} has no feed URL",
                           hint=f"set one with `forecourt dealers set {dealer.slug} "
                                "--feed F`, or pass a source file")
    return run_feed(conn, job.id, worker, str(source), fmt=job.params.get("format"),
                    mapping=job.params.get("mapping"), force=bool(job.params.get("force")))


def run_feed(conn: psycopg.Connection, job_id: int, worker: str, source: str, *,
             fmt: str | None = None, mapping: dict | None = None, force: bool = False,
             on_batch: Callable[[dict[str, int]], None] | None = None,
             interrupted: threading.Event | None = None) -> Job:
    """Ingest the feed of a job `worker` has started, heartbeating it meanwhile (a worker's
    attempt, or `forecourt ingest`): stops when the job is cancelled (settled cancelled) or
    taken over by another worker, at the next batch, or at the next chunk while its feed
    downloads (or between the download's tries). `interrupted` (Ctrl-C at the terminal, see
    crawler.cli.ingest) stops it at the same points, leaving the job running for the caller
    to settle."""
    from ingest.feed import run_job

    # The ingest runs in this thread; a second one heartbeats the job on its own connection
    # (a feed download can take minutes between batches) and notes a cancel request.
    done = threading.Event()
    state: dict = {"reason": None}

    def beat_loop() -> None:
        # Ctrl-C and SIGTERM are for the thread that runs the ingest: delivered here, they
        # would not wake it from a blocking read until that read timed out
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        beat_conn: psycopg.Connection | None = None
        lost = False  # logged once per outage, not every beat
        try:
            while not done.wait(get_settings().job_beat_interval_s / 2):
                try:
                    if beat_conn is None:
                        beat_conn = connect()
                        should_stop, watched = watch(beat_conn, job_id, worker)
                    if should_stop():
                        state["reason"] = watched["reason"]
                        return
                    lost = False
                except (psycopg.Error, ConfigError) as exc:
                    # Its connection was cut (a restart, pg_terminate_backend, a blip): open
                    # another and beat on. Dying here would leave a live attempt looking
                    # dead to the reaper, deaf to a cancel, blind to a take-over.
                    if not lost:
                        log.warning("job %s heartbeat lost its database connection (%s);"
                                    " reconnecting", job_id, str(exc).strip().splitlines()[0]
                                    if str(exc).strip() else type(exc).__name__)
                    lost = True
                    if beat_conn is not None:
                        beat_conn.close()
                    beat_conn = None
        finally:
            if beat_conn is not None:
                beat_conn.close()

    beater = threading.Thread(target=beat_loop, name=f"beat-{job_id}", daemon=True)
    beater.start()

    def check_stop() -> None:  # a dict read: called for every chunk downloaded
        if state["reason"]:
            raise Stopped(state["reason"])
        if interrupted is not None and interrupted.is_set():
            raise Stopped("interrupted")

    def batch_done(counters: dict[str, int]) -> None:
        check_stop()
        if on_batch is not None:
            on_batch(counters)

    try:
        # run_job fetches an http(s) feed itself (outbound safety, conditional GET, retries).
        return run_job(conn, job_id, source, fmt=fmt, mapping=mapping, on_batch=batch_done,
                       force=force, check_stop=check_stop)
    except Stopped as stop:
        if str(stop) == "cancelled":
            return jobs_db.fail_running(conn, job_id, "cancelled while running", "cancelled",
                                        state="cancelled") or jobs_db.get(conn, job_id)
        return jobs_db.get(conn, job_id)
    finally:
        done.set()
        beater.join(timeout=5)
