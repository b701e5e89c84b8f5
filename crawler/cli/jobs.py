"""`forecourt jobs`: list, inspect, follow, cancel and prune jobs."""

from __future__ import annotations

import json
import time

import typer
from rich.table import Table

from crawler.cli.common import JOB_HELP, console, database, job_number, say
from crawler.cli.rejects import excerpt
from crawler.cli.render import job_progress, moment, status_line, summary_table
from crawler.config import get_settings
from crawler.crawl_runner import log_path
from crawler.db import dealers as dealers_db
from crawler.errors import Interrupted
from crawler.logging import redact
from crawler.models import FINAL_STATES, Job

STATES = ("queued", "running", "succeeded", "partial", "failed", "blocked", "cancelled", "dead")


def _state(value: str | None) -> str | None:
    if value is not None and value not in STATES:
        raise typer.BadParameter(f"unknown state {value!r}; use one of {', '.join(STATES)}")
    return value


def jobs_table(conn, jobs: list[Job], title: str = "Jobs") -> Table:
    names = dealers_db.slugs(conn, {j.dealership_id for j in jobs})
    table = Table(title=title)
    for col in ("job", "dealer", "kind", "trigger", "state", "phase", "attempts", "items",
                "stored", "created", "error"):
        table.add_column(col, justify="right" if col in ("job", "attempts", "items",
                                                         "stored") else "left")
    for j in jobs:
        table.add_row(str(j.id), names.get(j.dealership_id, str(j.dealership_id)), j.kind,
                      j.trigger, j.state, j.phase or "-", str(j.attempts),
                      str(j.counters.get("items", 0)), str(j.counters.get("upserted", 0)),
                      moment(j.created_at),
                      excerpt(j.error) if j.error else "")  # cut with "…": `jobs show` has it
    return table


def job_detail(conn, job: Job) -> Table:
    from jobs import queues

    names = dealers_db.slugs(conn, [job.dealership_id])
    table = Table(title=f"Job {job.id}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    rows = [("public id", str(job.public_id) if job.public_id else "-"),
            ("dealer", names.get(job.dealership_id, str(job.dealership_id))),
            ("kind", job.kind), ("trigger", job.trigger), ("state", job.state),
            ("phase", job.phase or "-"), ("attempts", str(job.attempts)),
            ("queue", queues.waits_on(job) or job.queue or "-"),
            *([("waiting for", w)] if (w := queues.waiting_for(job)) else []),
            ("worker", job.worker or "-"),
            ("created", moment(job.created_at)), ("started", moment(job.started_at)),
            ("heartbeat", moment(job.heartbeat_at)), ("finished", moment(job.finished_at)),
            ("retry at", moment(job.retry_at)),
            ("counters", json.dumps(job.counters, sort_keys=True)),
            ("verdict", job.verdict or "-"), ("error", job.error or "-"),
            ("error kind", job.error_kind or "-")]
    if job.params:
        # the feed URL it runs from may carry credentials: shown redacted
        rows.append(("params", redact(json.dumps(job.params, sort_keys=True))))
    if job.replayed_as:
        rows.append(("replayed as", str(job.replayed_as)))
    if (job.report or {}).get("settled"):
        rows.append(("settled", job.report["settled"]))
    if job.accepted_at:
        rows.append(("gate baseline", f"from {job.accepted_at}"))
    if (log := log_path(job.id)).exists():  # on the machine whose worker ran it; a feed
        # job has one when `forecourt ingest` met an unexpected error (its traceback)
        rows.append(("crawl log" if job.kind == "crawl" else "log", str(log)))
    for n, e in enumerate(job.errors, 1):
        rows.append((f"error #{n}", f"attempt {e.get('attempt')} {e.get('kind')}: "
                                    f"{e.get('error')} ({e.get('at')})"))
    for field, value in rows:  # errors quote pages and feeds: text, never rich markup
        table.add_row(field, value)
    return table


def ended(job: Job, failed_since: dict[int, float]) -> bool:
    """Whether a followed job has ended: a final state that holds. A failure its worker is
    about to retry, bury or cancel (jobs.outcome.undecided) is not the end, unless it holds
    past twice `job_reap_after_s`, as the API has it (jobs.outcome.settling): by then the
    reaper would have acted for a worker that died first. `failed_since` keeps, per job,
    when the follower first saw such a failure (its own clock: the database's may differ)."""
    from jobs import outcome

    if job.state not in FINAL_STATES:
        failed_since.pop(job.id, None)
        return False
    if not outcome.undecided(job):
        return True
    since = failed_since.setdefault(job.id, time.monotonic())
    return time.monotonic() - since > 2 * get_settings().job_reap_after_s


WAITING_HINT_AFTER_S = 10.0


def waiting_hint(job: Job, following_since: float) -> str:
    """A hint on a job still queued a while after the follower began: no worker may be
    running (every worker busy is the other reason), and a silent wait does not say so."""
    if job.state != "queued" or time.monotonic() - following_since < WAITING_HINT_AFTER_S:
        return ""
    return "  (no worker has started it yet: is `forecourt worker` running?)"


def stalled_hint(job: Job, beats: dict[int, tuple]) -> str:
    """A hint on a running job whose heartbeat has not moved for `job_stale_after_s` of the
    follower's own time (no clock of another machine compared): its worker was killed, or
    lost the database, and the job stays `running` until a live worker takes it over.
    `beats` keeps, per job, the last heartbeat seen and when it was first seen."""
    if job.state != "running":
        beats.pop(job.id, None)
        return ""
    now = time.monotonic()
    seen = beats.get(job.id)
    if seen is None or seen[0] != job.heartbeat_at:
        beats[job.id] = (job.heartbeat_at, now)
        return ""
    quiet = now - seen[1]
    if quiet <= get_settings().job_stale_after_s:
        return ""
    return (f"  (no heartbeat for {quiet:.0f} s: its worker died? a running "
            "`forecourt worker` takes it over)")


def follow(conn, job_id: int, label: str, interval_s: float = 0.5) -> Job:
    """Show a job's progress live until it ends; returns the final record."""
    from jobs import service

    failed_since: dict[int, float] = {}
    beats: dict[int, tuple] = {}
    started = time.monotonic()
    try:
        with job_progress() as progress:
            task = progress.add_task(label, total=None, status="queued")
            while True:
                job = service.get(conn, job_id)
                progress.update(task, status=status_line(job) + waiting_hint(job, started)
                                + stalled_hint(job, beats))
                if ended(job, failed_since):
                    progress.update(task, total=1, completed=1)
                    return job
                time.sleep(interval_s)
    except KeyboardInterrupt:  # the job is a worker's: it goes on, and the line says so
        raise Interrupted(f"stopped following job {job_id}; the job goes on",
                          hint=f"`forecourt jobs show {job_id} --follow` follows it again, "
                               f"`forecourt jobs cancel {job_id}` stops it") from None


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="List, inspect, follow, cancel and prune jobs.",
                        no_args_is_help=True)
    app.add_typer(group, name="jobs")

    @group.command("list")
    def list_(dealer: str = typer.Option(None, "--dealer", "-d", help="Only this dealership."),
              state: str = typer.Option(None, "--state", "-s", callback=_state,
                                        help=f"Only this state: {', '.join(STATES)}."),
              limit: int = typer.Option(50, "--limit", "-n", min=1, help="How many, newest first.")
              ) -> None:
        """List jobs, newest first."""
        from jobs import service

        with database() as conn:
            dealer_id = dealers_db.get(conn, dealer).id if dealer else None
            console.print(jobs_table(conn, service.list_jobs(conn, dealer_id, state, limit)))

    @group.command("show")
    def show(given: str = typer.Argument(..., metavar="JOB", help=JOB_HELP),
             follow_: bool = typer.Option(False, "--follow", "-f",
                                          help="Follow it live until it ends.")) -> None:
        """Show one job: state, phase, counters, error history."""
        from jobs import service

        with database() as conn:
            job_id = job_number(conn, given)
            job = service.get(conn, job_id)
            if follow_ and not ended(job, {}):
                job = follow(conn, job_id, f"job {job_id}")
                slug = dealers_db.slugs(conn, [job.dealership_id]).get(job.dealership_id, "?")
                console.print(summary_table([(slug, job)]))
            console.print(job_detail(conn, job))

    @group.command("cancel")
    def cancel(given: str = typer.Argument(..., metavar="JOB", help=JOB_HELP)) -> None:
        """Cancel a queued job, or stop a running one (its crawl child is killed)."""
        from jobs import service

        with database() as conn:
            job_id = job_number(conn, given)
            job = service.cancel(conn, job_id)
        if job.state == "cancelled":
            say(f"job {job_id} cancelled")
        else:
            say(f"job {job_id} is stopping (its worker ends it within a second or "
                f"two); see `forecourt jobs show {job_id}`")

    @group.command("prune")
    def prune(older_than: float | None = typer.Option(
            None, "--older-than", min=0,
            help="Days; default FORECOURT_JOB_RETENTION_DAYS (90). 0 deletes nothing.")) -> None:
        """Delete finished jobs older than the retention, with their rejects (each dealer's
        last runs and unhandled dead letters are kept; vehicles and their history never go).
        The reaper in every worker does this too, a few batches at a time."""
        from jobs import retention

        with database() as conn:
            done = retention.prune(conn, older_than)
        say(f"pruned {len(done['ids'])} job(s), {done['rejects']} reject(s)")
