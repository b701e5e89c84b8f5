"""`forecourt crawl`: crawl one dealership now, with live progress and a summary."""

from __future__ import annotations

import os
import socket

import typer

from crawler import preflight
from crawler.cli import crash
from crawler.cli.common import console, database, err_console, say
from crawler.cli.render import job_progress, status_line, summary_table
from crawler.crawl_runner import run_crawl
from crawler.db import dealers as dealers_db
from crawler.db import job_queue as queue_db
from crawler.db import jobs as jobs_db
from crawler.db import redis_url
from crawler.errors import ForecourtError, InvalidInput, describe
from crawler.models import Job


def crawl_now(conn, slug: str, trigger: str = "operator") -> Job:
    """Create (or join) the dealer's crawl job and run it here, showing progress."""
    dealer = dealers_db.get(conn, slug)
    if not dealer.website_url:
        raise InvalidInput(f"dealership {slug!r} has no website URL",
                           hint=f"set one with `forecourt dealers set {slug} --url URL`, "
                                "or ingest its feed with `forecourt ingest`")
    job, created = jobs_db.create_or_get_active(conn, dealer.id, "crawl", trigger)
    if not created:
        raise InvalidInput(f"dealership {slug!r} already has job {job.id} {job.state}",
                           hint=f"follow it with `forecourt jobs show {job.id} --follow`")
    from jobs.attempt import give_up_after_s, watch

    worker = f"cli@{socket.gethostname()}:{os.getpid()}"
    jobs_db.start(conn, job.id, worker=worker)
    # Heartbeat the job as a worker does, so the reaper does not take this live crawl for
    # abandoned and run it again beside itself; `forecourt jobs cancel` stops it too.
    should_stop, _, close_watch = watch(job.id, worker, give_up_after_s=give_up_after_s())
    try:
        with job_progress() as progress:
            task = progress.add_task(f"crawl {slug}", total=None, status="starting")

            def tick(j: Job) -> None:
                progress.update(task, status=status_line(j))

            try:
                job = run_crawl(job.id, on_tick=tick, should_stop=should_stop, owner=worker)
            except KeyboardInterrupt:  # the child is stopped; settle the job, don't leave it
                queue_db.fail_running(conn, job.id, "interrupted at the terminal", "cancelled",
                                     state="cancelled")  # to the reaper to retry
                raise
            except ForecourtError as exc:  # failed, with the reason (left running, only a
                # worker's reaper would end it: `jobs cancel` cannot, and every later crawl of
                # the dealer is refused)
                try:
                    queue_db.fail_running(conn, job.id, describe(exc), "crash")
                except Exception:  # noqa: BLE001 - the database went away: the reaper settles it
                    pass
                raise
            except Exception as exc:  # e.g. its log could not be opened: the same, in one
                # line with the traceback in the job's log
                raise crash.job_crashed(conn, job.id, "crawl", exc) from exc
            progress.update(task, total=1, completed=1, status=status_line(job))
    finally:
        close_watch()
    return job


def _check_rate_limit_redis() -> None:
    """The shared per-platform rate limit lives in Redis. Down (or the embedded one not
    starting): the crawl runs without it, as documented, with one warning line. Answering
    but unusable (password, database number, TLS): refused in one line, as the worker does,
    before the job is created; a mistake in REDIS_URL is not an outage to crawl through."""
    from crawler.errors import ConfigError

    without = "crawling without the shared per-platform rate limit"
    try:
        url = redis_url()
    except ConfigError as exc:  # the embedded Redis did not start
        err_console.print(f"warning: {exc}; {without}", soft_wrap=True)
        return
    down = preflight.redis(url, unreachable_ok=True)
    if down:
        err_console.print(f"warning: {down}; {without} (check REDIS_URL)", soft_wrap=True)


def register(app: typer.Typer) -> None:
    @app.command("crawl")
    def crawl(slug: str = typer.Argument(..., help="The dealership's slug."),
              queue: bool = typer.Option(False, "--queue", help="Enqueue the crawl for the "
                                         "workers and print the job id instead of crawling "
                                         "here."),
              wait: bool = typer.Option(False, "--wait", help="With --queue: follow the job "
                                        "live until it ends.")) -> None:
        """Crawl a dealership's website now and store what it yields."""
        if queue or wait:
            from crawler.cli.jobs import follow
            from jobs import service

            with database() as conn:
                dealer = dealers_db.get(conn, slug)
                # A Redis that cannot take the message is one line here, before the job is
                # recorded (else a failed job per try); if it goes away in between, the job
                # is recorded failed and the line names it.
                preflight.redis(redis_url())
                job, created = service.trigger(conn, dealer.id, "crawl", "operator")
                line = f"job {job.id} {'queued' if created else 'already ' + job.state}"
                if not wait:
                    say(f"{line}; follow it with `forecourt jobs show {job.id} "
                        "--follow`")
                    return
                say(line)
                job = follow(conn, job.id, f"crawl {slug}")
            console.print(summary_table([(slug, job)]))
            if job.state not in ("succeeded", "partial"):
                raise typer.Exit(1)
            return
        preflight.data_dir()  # its log goes there: refuse before the job is created
        _check_rate_limit_redis()
        with database() as conn:
            job = crawl_now(conn, slug)
        console.print(summary_table([(slug, job)]))
        if job.state not in ("succeeded", "partial"):
            raise typer.Exit(1)
