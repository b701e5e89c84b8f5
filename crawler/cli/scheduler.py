"""`forecourt scheduler`: enqueue dealerships' jobs on their schedules (leader-elected)."""

from __future__ import annotations

import os

import typer

from crawler import logging as fc_logging
from crawler import preflight
from crawler.cli.common import database, say
from crawler.config import get_settings, reset_settings
from crawler.db import database_url, redis_url


def register(app: typer.Typer) -> None:
    @app.command("scheduler")
    def scheduler() -> None:
        """Run the scheduler until stopped. Run several for high availability: one leads
        (a PostgreSQL advisory lock) and enqueues, the others stand by."""
        with database():
            pass  # the schema is this code's (or refused) before the first tick
        preflight.redis(redis_url())  # it enqueues every job there
        os.environ["DATABASE_URL"] = database_url()
        os.environ["REDIS_URL"] = redis_url()
        reset_settings()
        fc_logging.configure()
        from jobs import scheduler as scheduler_mod

        say(f"scheduler: ticking every {get_settings().scheduler_tick_s:g} s; "
            "Ctrl-C to stop")
        scheduler_mod.run()
        say("scheduler stopped")
