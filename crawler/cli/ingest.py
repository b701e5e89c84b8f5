"""`forecourt ingest`: ingest a dealership's feed (a file or an http(s) URL) now, with a
progress bar in rows per second and a summary table."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from crawler import preflight
from crawler.cli import crash
from crawler.cli.common import console, database
from crawler.db import dealers as dealers_db
from crawler.db import job_queue as queue_db
from crawler.db import jobs as jobs_db
from crawler.errors import InvalidInput
from crawler.models import FINAL_STATES, Job
from ingest import mapping as mapping_mod
from ingest.readers import FORMATS

SUMMARY = ("added", "changed", "unchanged", "relisted", "removed", "rejected", "duplicates")


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}", style="bold",
                                                markup=False), BarColumn(),
                    TextColumn("{task.completed:,.0f} rows  {task.fields[rate]}", markup=False),
                    TextColumn("{task.fields[status]}", markup=False), TimeElapsedColumn(),
                    console=console, transient=False)


def ingest_now(conn, slug: str, source: str | None = None, trigger: str = "operator",
               fmt: str | None = None, mapping: dict | None = None, force: bool = False) -> Job:
    """Create (or join) the dealer's feed job and run it here, showing rows per second.
    `force` ignores the feed's stored validators: it is fetched and processed in full."""
    dealer = dealers_db.get(conn, slug)
    source = source or dealer.feed_url
    if not source:
        raise InvalidInput(f"dealership {slug!r} has no feed", hint="pass a file or URL")
    if not source.startswith(("http://", "https://")) and not Path(
            source.removeprefix("file://")).is_file():
        raise InvalidInput(f"no feed file {source!r}", hint="give an existing file or a URL")
    queue_db.settle_abandoned(conn, 120, dealer.id)
    job, created = jobs_db.create_or_get_active(conn, dealer.id, "feed", trigger,
                                                {"source": source, **({"force": True}
                                                                      if force else {})})
    if not created:
        raise InvalidInput(f"dealership {slug!r} already has job {job.id} {job.state}",
                           hint=f"wait for it, or see `forecourt jobs show {job.id}`")
    from jobs.attempt import run_feed

    worker = f"cli@{socket.gethostname()}:{os.getpid()}"
    attempt = jobs_db.start(conn, job.id, worker=worker).attempts
    started = time.monotonic()
    with _progress() as progress:
        task = progress.add_task(f"ingest {slug}", total=None, rate="", status="reading")

        def tick(counters: dict[str, int]) -> None:
            rows = counters.get("items", 0)
            rate = rows / max(time.monotonic() - started, 1e-6)
            progress.update(task, completed=rows, rate=f"{rate:,.0f} rows/s",
                            status=f"added {counters.get('added', 0):,}  changed "
                                   f"{counters.get('changed', 0):,}  rejected "
                                   f"{counters.get('rejected', 0):,}")

        # Ctrl-C asks the run to stop at its next downloaded chunk, retry wait or batch:
        # raised at once, KeyboardInterrupt could land inside the HTTP client's connection
        # pool with its lock held, and closing the client then waits for ever. A second
        # Ctrl-C stops at once.
        interrupted = threading.Event()

        def on_sigint(signum, frame) -> None:
            if interrupted.is_set():
                raise KeyboardInterrupt
            interrupted.set()
            progress.update(task, status="stopping (Ctrl-C again to quit now)")

        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, on_sigint) if main else None
        try:  # heartbeating the job as a worker does: the reaper leaves it alone, and
            # `forecourt jobs cancel` stops it at its next batch
            job = run_feed(conn, job.id, worker, source, fmt=fmt, mapping=mapping,
                           force=force, on_batch=tick, interrupted=interrupted,
                           attempt=attempt)
            if interrupted.is_set() and job.state not in FINAL_STATES:
                raise KeyboardInterrupt
        except KeyboardInterrupt:  # settle it; don't leave it to the reaper to retry
            queue_db.fail_running(conn, job.id, "interrupted at the terminal", "cancelled",
                                 state="cancelled")
            raise
        except Exception as exc:  # a bug, a lost database connection: left running, the
            # job would refuse every ingest of the dealer until the reaper found it stale
            raise crash.job_crashed(conn, job.id, "ingest", exc) from exc
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        rows = job.counters.get("items", 0)
        # an empty feed ends at 0 rows, as its summary says (a 0 total draws a full bar)
        rate = rows / max(time.monotonic() - started, 1e-6)
        progress.update(task, total=rows, completed=rows, rate=f"{rate:,.0f} rows/s",
                        status=job.state + (f" ({job.verdict})" if job.verdict else ""))
    return job


def feed_line(feed: dict) -> str:
    """The summary's feed row: where the feed came from and how it was read, in words (a
    delimiter quoted: a bare ',' is lost among the list's own commas)."""
    parts = []
    for key, value in feed.items():
        if not value:
            continue
        if key == "rows_staged_in_workers":
            parts.append(f"{value:,} rows staged in worker processes")
        else:
            parts.append(f"{key} {value!r}" if key == "delimiter" else f"{key} {value}")
    return ", ".join(parts)


def ingest_summary(slug: str, job: Job) -> Table:
    c, report = job.counters, job.report or {}
    table = Table(title=f"Ingest {slug}: job {job.id} {job.state}")
    table.add_column("", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("rows", f"{c.get('items', 0):,}")
    for key in SUMMARY:
        table.add_row(key, f"{c.get(key, 0):,}")
    unknown = report.get("unknown_columns") or []
    table.add_row("unknown columns", f"{c.get('unknown_columns', len(unknown))}"
                  + (f": {', '.join(unknown)}" if unknown else ""))
    if report.get("duplicate_columns"):
        table.add_row("repeated columns", ", ".join(report["duplicate_columns"])
                      + " (the first of each name is used; a repeat is read as 'Name (2)')")
    feed = report.get("feed") or {}
    if feed:
        table.add_row("feed", feed_line(feed))
    seconds = report.get("seconds")
    if seconds is None and job.started_at and job.finished_at:
        seconds = (job.finished_at - job.started_at).total_seconds()
    if seconds:
        rate = c.get("items", 0) / seconds if seconds else 0
        table.add_row("time", f"{seconds:.2f} s ({rate:,.0f} rows/s)")
    verdict = job.verdict or "-"
    reasons = report.get("reasons") or []
    table.add_row("verdict", verdict + (f": {'; '.join(reasons)}" if reasons else ""))
    if report.get("note"):
        table.add_row("note", report["note"])
    if report.get("settled"):
        table.add_row("settled", report["settled"])
    if job.error and job.state == "failed":
        table.add_row("error", job.error)
    return table


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest(
        slug: str = typer.Argument(..., help="The dealership's slug."),
        source: str | None = typer.Argument(
            None, help="Feed file or http(s) URL (default: the dealership's feed URL)."),
        fmt: str | None = typer.Option(
            None, "--format", help="Feed format: " + ", ".join(FORMATS)
            + " (default: from the name or the content)."),
        mapping: str | None = typer.Option(
            None, "--mapping", help="Column mapping file (.json or .toml) for this feed."),
        force: bool = typer.Option(
            False, "--force", help="Process the feed even if it looks unchanged (ignore the "
            "stored ETag, Last-Modified and body hash)."),
    ) -> None:
        """Ingest a dealership's inventory feed now: CSV, TSV, XML, JSON or JSON Lines,
        optionally gzip or zip; prints added, changed, unchanged, removed and rejected."""
        if fmt is not None and fmt.lower() not in FORMATS:
            raise InvalidInput(f"unknown format {fmt!r}", hint="one of " + ", ".join(FORMATS))
        override = mapping_mod.load_override(mapping) if mapping is not None else None
        if source is None or source.lower().startswith(("http://", "https://")):
            preflight.data_dir()  # downloads go there: refuse before the job is created
        with database() as conn:
            job = ingest_now(conn, slug, source, fmt=fmt, mapping=override, force=force)
        console.print(ingest_summary(slug, job))
        if job.state == "failed":
            raise typer.Exit(1)
