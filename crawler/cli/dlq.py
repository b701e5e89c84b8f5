"""`forecourt dlq`: dead letters (jobs that failed every retry), per dealership."""

from __future__ import annotations

import typer

from crawler import preflight
from crawler.cli.common import JOB_HELP, console, database, job_number, say
from crawler.cli.jobs import job_detail, jobs_table
from crawler.db import dealers as dealers_db
from crawler.db import redis_url

LISTED = 200  # `dlq list` shows the newest this many unless told otherwise, as the API does
LEFT_NAMED = 10  # the dead letters a replay kept, named by id at most


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="List, inspect, replay and purge dead letters.",
                        no_args_is_help=True)
    app.add_typer(group, name="dlq")

    @group.command("list")
    def list_(dealer: str = typer.Option(None, "--dealer", "-d", help="Only this dealership."),
              limit: int = typer.Option(LISTED, "--limit", "-n", min=1,
                                        help="Show at most this many, the newest.")
              ) -> None:
        """List dead jobs not yet replayed or purged, newest first; says when there are
        more than it shows."""
        from jobs import service

        with database() as conn:
            dealer_id = dealers_db.get(conn, dealer).id if dealer else None
            dead = service.dead_letters(conn, dealer_id, limit + 1)
            console.print(jobs_table(conn, dead[:limit], title="Dead letters"))
            if len(dead) > limit:
                say(f"more dead letters than the {limit} shown (the newest): `--limit` shows "
                    "more; `dlq replay --dealer` replays a dealership's newest and clears the "
                    "older ones of its kind")

    @group.command("show")
    def show(given: str = typer.Argument(..., metavar="JOB", help=JOB_HELP)) -> None:
        """Inspect a dead letter: its params and every attempt's error. Another job is
        refused (`forecourt jobs show` shows any job)."""
        from jobs import service

        with database() as conn:
            console.print(job_detail(conn, service.dead_letter(conn, job_number(conn, given))))

    @group.command("replay")
    def replay(ctx: typer.Context,
               given: str = typer.Argument(None, metavar="JOB", help=JOB_HELP),
               dealer: str = typer.Option(None, "--dealer", "-d",
                                          help="Replay this dealership's dead letters.")
               ) -> None:
        """Run a dead job (or a dealership's dead jobs) again as a new queued job.

        One job runs per dealership at a time: while the dealership has an active job this
        fails with one line naming it, and the dead letters stay to replay when it ends."""
        from jobs import service

        if (given is None) == (dealer is None):  # a bad argument: exit 2
            from crawler.cli import UsageError

            raise UsageError("give a dead job's id or --dealer, not both or neither; "
                             "`forecourt dlq list` shows them", ctx=ctx)
        with database() as conn:
            preflight.redis(redis_url())  # no new job recorded only to fail at the enqueue
            left: list = []
            if given is not None:
                jobs = [service.replay(conn, job_number(conn, given))]
            else:
                dealer_id = dealers_db.get(conn, dealer).id
                jobs = service.replay_dead(conn, dealer_id)
                left = service.dead_letters(conn, dealer_id, LEFT_NAMED + 1)
            for job in jobs:
                say(f"queued job {job.id} ({job.kind}, {job.state}); follow it with "
                    f"`forecourt jobs show {job.id} --follow`")
            if not jobs:
                say("no dead letters to replay")
            if left:
                ids = ", ".join(str(j.id) for j in left[:LEFT_NAMED])
                count = (f"more than {LEFT_NAMED}" if len(left) > LEFT_NAMED
                         else str(len(left)))
                more = ", ..." if len(left) > LEFT_NAMED else ""
                say(f"{count} dead letter(s) of another kind kept ({ids}{more}): "
                    f"replay them when job {jobs[0].id} ends")

    @group.command("purge")
    def purge(dealer: str = typer.Option(..., "--dealer", "-d",
                                         help="The dealership whose dead letters go.")) -> None:
        """Clear a dealership's dead letters (the job records stay as history)."""
        from jobs import service

        with database() as conn:
            count = service.purge_dead(conn, dealers_db.get(conn, dealer).id)
        say(f"purged {count} dead letter(s) of {dealer}")
