"""One attempt of a job, in the worker: a crawl in its child process, or a feed ingest here.

The worker that claimed the job heartbeats its record while the attempt runs, stops when the
job is cancelled or no longer its own (taken over after the worker looked dead), and leaves
the record settled (the crawl child or the feed loop settles it; we settle it otherwise).
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable

import psycopg

from crawler.config import get_settings
from crawler.crawl_runner import run_crawl
from crawler.db import connect
from crawler.db import job_queue as queue_db
from crawler.db import jobs as jobs_db
from crawler.errors import ConfigError, InvalidInput
from crawler.models import Dealership, Job

log = logging.getLogger("forecourt.jobs")


class Stopped(Exception):
    """Raised inside a feed ingest when its job was cancelled or taken over."""


def watch(job_id: int, worker: str, on_settled: Callable[[Job], None] | None = None, *,
          give_up_after_s: float | None = None):
    """A should_stop callable that heartbeats the job at most once per beat interval, over a
    database connection of its own (application_name `forecourt watch job <id>`). Returns
    (should_stop, state, close): state["reason"] is 'cancelled' or 'lost' once stopping;
    close() closes the connection. `on_settled` sees the job as soon as the attempt has
    settled it (while the crawl child is still exiting), so a retry is decided before anyone
    reads the failure as final.

    A cut connection (a restart of PostgreSQL or of a pooler, pg_terminate_backend, a blip)
    is opened again at the next beat, one beat interval later, and the attempt goes on:
    ending it would throw a long crawl's work away, and a watch that stopped would leave a
    live attempt looking dead to the reaper, deaf to a cancel, blind to a take-over. One
    warning per outage. With `give_up_after_s`, once no beat has gone through for that long
    the next failure is raised: the caller gives the attempt up (its job is about to look
    abandoned, and another worker may take it over)."""
    interval = get_settings().job_beat_interval_s
    state: dict = {"next": 0.0, "reason": None, "settled": False}
    link: dict = {"conn": None, "beaten": time.monotonic(), "down": None}

    def should_stop() -> bool:
        now = time.monotonic()
        if now < state["next"]:
            return False
        state["next"] = now + interval
        try:
            if link["conn"] is None:
                # a server that does not answer holds a try no longer than the bound left
                # (libpq's shortest wait is 2 s)
                left = 10.0 if give_up_after_s is None else \
                    give_up_after_s - (now - link["beaten"])
                link["conn"] = connect(application_name=f"forecourt watch job {job_id}"[:63],
                                       connect_timeout=max(2, math.ceil(left)))
            settled = _look(link["conn"], job_id, worker, state)
        except (psycopg.Error, ConfigError) as exc:
            close()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else \
                type(exc).__name__
            if give_up_after_s is not None \
                    and time.monotonic() - link["beaten"] >= give_up_after_s:
                log.warning("job %s watch could not reach the database for %.1f s (%s): "
                            "giving the attempt up", job_id,
                            time.monotonic() - link["beaten"], first)
                raise
            if link["down"] is None:
                link["down"] = now
                log.warning("job %s watch lost its database connection (%s); reconnecting",
                            job_id, first)
            return False
        if link["down"] is not None:
            log.info("job %s watch reconnected to the database after %.1f s", job_id,
                     time.monotonic() - link["down"])
            link["down"] = None
        link["beaten"] = time.monotonic()
        if settled is not None and on_settled is not None:
            on_settled(settled)
        return state["reason"] is not None

    def close() -> None:
        conn, link["conn"] = link["conn"], None
        if conn is not None:
            conn.close()

    return should_stop, state, close


def _look(conn: psycopg.Connection, job_id: int, worker: str, state: dict) -> Job | None:
    """One heartbeat of the watch: notes in `state` a cancel request or a take-over, and
    returns the job the first time it finds the attempt settled."""
    job = queue_db.beat(conn, job_id, worker)
    if job is None:
        current = jobs_db.get(conn, job_id)
        if current.state == "running" or current.worker != worker:
            state["reason"] = "lost"  # taken over by another worker
        elif not state["settled"]:
            state["settled"] = True  # settled by the child, which is exiting
            return current
    elif job.cancel_requested_at is not None:
        state["reason"] = "cancelled"
    return None


def give_up_after_s() -> float:
    """How long a crawl's watch may go without a heartbeat before the attempt is given up:
    a beat short of the time after which its job looks abandoned (job_stale_after_s, which
    the config keeps above the beat interval) and another worker may take it over, so no
    two crawls of one dealer write at once."""
    settings = get_settings()
    return settings.job_stale_after_s - settings.job_beat_interval_s


def crawl(conn: psycopg.Connection, job: Job, dealer: Dealership, worker: str,
          on_settled: Callable[[Job], None] | None = None) -> Job:
    if not (job.params.get("url") or dealer.website_url):
        raise InvalidInput(f"dealership {dealer.slug!r} has no website URL",
                           hint=f"set one with `forecourt dealers set {dealer.slug} "
                                "--url URL`, or ingest its feed")
    limit = int(dealer.settings.get("time_limit_s") or get_settings().crawl_time_limit_s)
    should_stop, _, close = watch(job.id, worker, on_settled, give_up_after_s=give_up_after_s())
    try:
        return run_crawl(job.id, time_limit_s=limit, should_stop=should_stop, owner=worker,
                         attempt=job.attempts)
    finally:
        close()


def feed(conn: psycopg.Connection, job: Job, dealer: Dealership, worker: str,
         on_settled: Callable[[Job], None] | None = None) -> Job:
    source = job.params.get("source") or dealer.feed_url
    if not source:
        raise InvalidInput(f"dealership {dealer.slug!r} has no feed URL",
                           hint=f"set one with `forecourt dealers set {dealer.slug} "
                                "--feed F`, or pass a source file")
    return run_feed(conn, job.id, worker, str(source), fmt=job.params.get("format"),
                    mapping=job.params.get("mapping"), force=bool(job.params.get("force")),
                    attempt=job.attempts)


def run_feed(conn: psycopg.Connection, job_id: int, worker: str, source: str, *,
             fmt: str | None = None, mapping: dict | None = None, force: bool = False,
             on_batch: Callable[[dict[str, int]], None] | None = None,
             interrupted: threading.Event | None = None, attempt: int | None = None) -> Job:
    """Ingest the feed of a job `worker` has started, heartbeating it meanwhile (a worker's
    attempt, or `forecourt ingest`): stops when the job is cancelled (settled cancelled) or
    taken over by another worker, at the next batch, or at the next chunk while its feed
    downloads (or between the download's tries). `interrupted` (Ctrl-C at the terminal, see
    crawler.cli.ingest) stops it at the same points, leaving the job running for the caller
    to settle. `attempt`: the one `worker` claimed: the feed writes only as that attempt
    (its batches are refused once another has taken the job over)."""
    from ingest.feed_job import run_job

    # The ingest runs in this thread; a second one heartbeats the job on its own connection
    # (a feed download can take minutes between batches) and notes a cancel request. It
    # beats on however long its connection is away (watch reopens it).
    done = threading.Event()
    state: dict = {"reason": None}

    def beat_loop() -> None:
        # Ctrl-C and SIGTERM are for the thread that runs the ingest: delivered here, they
        # would not wake it from a blocking read until that read timed out
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        should_stop, watched, close = watch(job_id, worker)
        try:
            while not done.wait(get_settings().job_beat_interval_s / 2):
                if should_stop():
                    state["reason"] = watched["reason"]
                    return
        finally:
            close()

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
                       force=force, check_stop=check_stop, attempt=attempt)
    except Stopped as stop:
        if str(stop) == "cancelled":
            return queue_db.fail_running(conn, job_id, "cancelled while running", "cancelled",
                                        state="cancelled") or jobs_db.get(conn, job_id)
        return jobs_db.get(conn, job_id)
    finally:
        done.set()
        beater.join(timeout=5)
