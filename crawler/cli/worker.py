"""`forecourt worker`: run job worker processes (Dramatiq) until stopped."""

from __future__ import annotations

import os

import typer

from crawler import preflight
from crawler.cli.common import database, err_console, say
from crawler.config import PROJECT_ROOT, reset_settings
from crawler.db import database_url, redis_url


def _queues(values: list[str] | None) -> list[str] | None:
    from jobs import queues  # names only: checking -Q sets up no broker

    unknown = [q for q in values or [] if q not in queues.ALL]
    if unknown:
        raise typer.BadParameter(f"unknown queue {unknown[0]!r}; use "
                                 f"{', '.join(queues.ALL[:-1])} or {queues.ALL[-1]}")
    rendering = [q for q in values or [] if queues.is_render(q)]
    if rendering and not queues.consumed(values, renders=False):
        no_browser = preflight.chromium()
        if no_browser:  # it would take no job at all
            raise typer.BadParameter(f"{rendering[0]} is for workers that have Chromium, and "
                                     f"this one has none: {no_browser}")
    return values


def register(app: typer.Typer) -> None:
    @app.command("worker")
    def worker(
        processes: int = typer.Option(2, "--processes", "-p", min=1,
                                      help="Worker processes to run."),
        threads: int = typer.Option(2, "--threads", "-t", min=1,
                                    help="Jobs each process runs at once (crawls run in "
                                         "child processes)."),
        queues: list[str] = typer.Option(None, "--queue", "-Q", callback=_queues,  # noqa: B008
                                         help="Consume only these queues (priority, "
                                              "scheduled, priority.render, "
                                              "scheduled.render); default priority and "
                                              "scheduled. A worker that has Chromium also "
                                              "takes each one's .render queue (crawls "
                                              "that must render pages); one without, none."),
        log_file: str = typer.Option(None, "--log-file", help="Write logs here, not stderr."),
    ) -> None:
        """Run job workers: they take crawl and feed jobs off the queues until stopped
        (SIGTERM or Ctrl-C lets running jobs finish)."""
        with database():
            pass  # the schema is this code's (or refused) before any worker takes a job
        # Fail here, in one line, rather than in every job (data dir: crawl logs, feed
        # downloads) or in consumers reconnecting for ever (Redis).
        preflight.data_dir()
        preflight.redis(redis_url())
        # No Chromium: warned, not refused. A worker may serve only plain-HTTP dealers and
        # feeds; a crawl that must render goes to a worker that has Chromium, or with none
        # alive fails once, permanently, with the fix (jobs/failures.py).
        no_browser = preflight.chromium()
        if no_browser:
            err_console.print(f"warning: {no_browser}", soft_wrap=True)
        # Children (forked worker processes, crawl children) use the servers resolved here.
        os.environ["DATABASE_URL"] = database_url()
        os.environ["REDIS_URL"] = redis_url()
        os.environ["FORECOURT_WORKER_THREADS"] = str(threads)
        reset_settings()
        import dramatiq.worker
        from dramatiq.cli import main, make_argument_parser

        # Prefetch no more than a process can start: waiting messages stay in Redis, where
        # any idle worker can take them. This is the start value: jobs/prefetch.py keeps each
        # queue consumer's prefetch at what the process can start now.
        dramatiq.worker.QUEUE_PREFETCH = threads
        # On SIGTERM a job may run to its end: a crawl's time limit, not Dramatiq's default
        # 10 minutes (a crawl stopped mid-way is redelivered and starts over).
        from crawler.config import get_settings

        shutdown_ms = (get_settings().crawl_time_limit_s + 60) * 1000
        argv = ["jobs.actors", "--processes", str(processes), "--threads", str(threads),
                "--path", str(PROJECT_ROOT), "--worker-shutdown-timeout", str(shutdown_ms)]
        if queues:
            argv += ["--queues", *queues]
        if log_file:
            argv += ["--log-file", log_file]
        from jobs.queues import consumed

        taken = consumed(queues, renders=not no_browser)  # as each worker process decides
        say(f"worker: {processes} process(es) x {threads} thread(s) on "
            f"{', '.join(taken)}; Ctrl-C to stop")
        raise typer.Exit(main(make_argument_parser().parse_args(argv)))


# --- running work through real worker and scheduler processes (`forecourt demo --workers`) --

def spawn(args: list[str], log_name: str, env: dict[str, str]):
    """Start `forecourt <args>` as its own process group, logging to the data dir."""
    import subprocess
    import sys

    from crawler.config import get_settings

    log = get_settings().data_dir / "logs" / log_name
    log.parent.mkdir(parents=True, exist_ok=True)
    exe = [sys.executable, "-c", "import sys; from crawler.cli import main; sys.exit(main())"]
    with open(log, "ab") as out:
        proc = subprocess.Popen([*exe, *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=str(PROJECT_ROOT), start_new_session=True)
    proc.log = log
    proc.log_start = log.stat().st_size
    return proc


def wait_ready(proc, marker: str, timeout: float = 60) -> None:
    import time

    from crawler.errors import ConfigError

    deadline = time.monotonic() + timeout
    while True:
        with open(proc.log, "rb") as f:
            f.seek(proc.log_start)
            if marker.encode() in f.read():
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise ConfigError(f"{' '.join(proc.args[3:])} did not start",
                              hint=f"see {proc.log}")
        time.sleep(0.1)


def stop_process(proc, timeout: float = 30) -> None:
    """SIGTERM the process group (running jobs finish), then SIGKILL after `timeout`."""
    import signal
    import subprocess

    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, None)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass


def run_with_workers(conn, crawls: list[str], feeds: list[tuple[str, str]],
                     allow_hosts: list[str] | None = None):
    """Run crawls (enqueued by a real scheduler: each dealer is made due now) and feed ingests
    (triggered as the API would) on a real worker; follow them live; return (slug, job)s."""
    import json
    import time

    from crawler.cli.render import job_progress, status_line
    from crawler.config import get_settings
    from crawler.db import dealers as dealers_db
    from crawler.db import schedules as schedules_db
    from crawler.models import FINAL_STATES
    from jobs import service

    env = dict(os.environ, DATABASE_URL=database_url(), REDIS_URL=redis_url(),
               FORECOURT_SCHEDULE_JITTER_S="0", FORECOURT_SCHEDULER_TICK_S="0.5")
    if allow_hosts:
        env["FORECOURT_ALLOW_PRIVATE_HOSTS"] = json.dumps(
            sorted(set(get_settings().allow_private_hosts) | set(allow_hosts)))
    procs = [spawn(["worker", "--processes", "1", "--threads", "2"], "demo-worker.log", env),
             spawn(["scheduler"], "demo-scheduler.log", env)]
    dealers = {slug: dealers_db.get(conn, slug) for slug in [*crawls, *(s for s, _ in feeds)]}
    try:
        wait_ready(procs[0], "Worker process is ready for action")
        wait_ready(procs[1], "scheduler: ticking")
        before = {slug: max((j.id for j in service.list_jobs(conn, d.id, limit=1)), default=0)
                  for slug, d in dealers.items()}
        now = schedules_db.server_now(conn)
        for slug in crawls:
            dealers_db.update(conn, dealers[slug].id, schedule_interval_s=86_400, paused=False)
            schedules_db.clear(conn, dealers[slug].id)
            schedules_db.set_next(conn, dealers[slug].id, now, None)
        jobs: list[tuple[str, int]] = []
        for slug, source in feeds:
            if slug not in crawls:
                job, _ = service.trigger(conn, dealers[slug].id, "feed", "demo",
                                         {"source": source})
                jobs.append((slug, job.id))
        deadline = time.monotonic() + 60
        for slug in crawls:  # the scheduler's jobs
            while True:
                new = [j for j in service.list_jobs(conn, dealers[slug].id, limit=5)
                       if j.id > before[slug]]
                if new:
                    jobs.append((slug, new[-1].id))
                    break
                if procs[1].poll() is not None or time.monotonic() > deadline:
                    from crawler.errors import ConfigError

                    raise ConfigError(f"the scheduler did not enqueue {slug}",
                                      hint=f"see {procs[1].log}")
                time.sleep(0.2)
        results = _follow_all(conn, jobs, job_progress, status_line, FINAL_STATES)
        later = [(slug, source) for slug, source in feeds if slug in crawls]
        if later:  # one job per dealer at a time: feeds of crawled dealers come after
            jobs = [(slug, service.trigger(conn, dealers[slug].id, "feed", "demo",
                                           {"source": source})[0].id) for slug, source in later]
            results += _follow_all(conn, jobs, job_progress, status_line, FINAL_STATES)
        return results
    finally:
        for slug in crawls:
            dealers_db.update(conn, dealers[slug].id, schedule_interval_s=None)
            schedules_db.clear(conn, dealers[slug].id)
        for proc in procs:
            stop_process(proc)


def _follow_all(conn, jobs, job_progress, status_line, final_states):
    import time

    from crawler.cli.jobs import ended
    from jobs import service

    failed_since: dict[int, float] = {}
    with job_progress() as progress:
        tasks = {job_id: progress.add_task(f"{j_kind} {slug}", total=None, status="queued")
                 for slug, job_id in jobs
                 for j_kind in [service.get(conn, job_id).kind]}
        pending = {job_id for _, job_id in jobs}
        while pending:
            for job_id in list(pending):
                job = service.get(conn, job_id)
                progress.update(tasks[job_id], status=status_line(job) + f"  [{job.worker or '-'}]")
                if job.state in final_states and ended(job, failed_since):
                    progress.update(tasks[job_id], total=1, completed=1)
                    pending.discard(job_id)
            time.sleep(0.3)
    return [(slug, service.get(conn, job_id)) for slug, job_id in jobs]
