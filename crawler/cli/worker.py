"""`forecourt worker`: run job worker processes (Dramatiq) until stopped."""

from __future__ import annotations

import os

import typer

from crawler.cli.common import console, database
from crawler.config import PROJECT_ROOT, reset_settings
from crawler.db import database_url, redis_url


def register(app: typer.Typer) -> None:
    @app.command("worker")
    def worker(
        processes: int = typer.Option(2, "--processes", "-p", min=1,
                                      help="Worker processes to run."),
        threads: int = typer.Option(2, "--threads", "-t", min=1,
                                    help="Jobs each process runs at once (crawls run in "
                                         "child processes)."),
        queues: list[str] = typer.Option(None, "--queue", "-Q",
                                         help="Consume only these queues (priority, "
                                              "scheduled); default both."),
        log_file: str = typer.Option(None, "--log-file", help="Write logs here, not stderr."),
    ) -> None:
        """Run job workers: they take crawl and feed jobs off the queues until stopped
        (SIGTERM or Ctrl-C lets running jobs finish)."""
        with database():
            pass  # migrated before any worker takes a job
        # Children (forked worker processes, crawl children) use the servers resolved here.
        os.environ["DATABASE_URL"] = database_url()
        os.environ["REDIS_URL"] = redis_url()
        os.environ["FORECOURT_WORKER_THREADS"] = str(threads)
        reset_settings()
        import dramatiq.worker
        from dramatiq.cli import main, make_argument_parser

        # Prefetch no more than a process can start: waiting messages stay in Redis, where
        # any idle worker can take them, and operator messages are not stuck behind them.
        dramatiq.worker.QUEUE_PREFETCH = threads
        argv = ["jobs.actors", "--processes", str(processes), "--threads", str(threads),
                "--path", str(PROJECT_ROOT)]
        if queues:
            argv += ["--queues", *queues]
        if log_file:
            argv += ["--log-file", log_file]
        console.print(f"worker: {processes} process(es) x {threads} thread(s) on "
                      f"{', '.join(queues or ['priority', 'scheduled'])}; Ctrl-C to stop")
        raise typer.Exit(main(make_argument_parser().parse_args(argv)))
