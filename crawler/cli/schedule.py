"""`forecourt schedule`: set, pause, resume and list dealerships' schedules."""

from __future__ import annotations

import re

import typer
from rich.table import Table

from crawler.cli.common import console, database, err_console, say
from crawler.cli.render import interval_text, moment
from crawler.db import dealers as dealers_db
from crawler.db import schedules as schedules_db

_INTERVAL = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse(spec: str) -> tuple[str | None, int | None]:
    """'0 6 * * *' is cron; '15m', '2h', '900s' an interval."""
    m = _INTERVAL.match(spec.strip())
    if m:
        return None, int(m.group(1)) * _UNITS[m.group(2)]
    return spec.strip(), None


def failing(failures: int) -> str:
    """The `failing` column: failures in a row, and when they push the next run back (the
    scheduler's backoff), by how much, so a next run far off says why."""
    from jobs.scheduler import backoff_s

    if failures == 0:
        return "-"
    pushed = backoff_s(failures)
    later = f", next run held back {pushed / 60:.0f} min" if pushed else ""
    return f"{failures} in a row{later}"


def scheduler_warning(leaders: list[dict], scheduled: int, unset: int,
                      stale_s: float) -> str | None:
    """Why `scheduled` unpaused dealers (`unset` of them with no next run yet) get no jobs:
    no scheduler leads (jobs.scheduler: the leader holds the advisory lock), or the leader's
    session has been silent past the takeover limit (stopped or stuck). None when one leads."""
    if not scheduled:
        return None
    nothing = (f"{scheduled} scheduled dealer(s) get no jobs"
               + (f", {unset} with no next run yet" if unset else ""))
    if not leaders:
        return f"no scheduler is running: {nothing} (run `forecourt scheduler`)"
    silent = max((r["silent_s"] for r in leaders if r["silent_s"] is not None), default=None)
    if silent is not None and silent > stale_s:
        return (f"the leading scheduler (backend pid {leaders[0]['pid']}) has been silent for "
                f"{silent:.0f} s, stopped or stuck: {nothing} until a standby takes over "
                "(run `forecourt scheduler`, or restart the stuck one)")
    return None


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Set, pause, resume and list dealerships' schedules.",
                        no_args_is_help=True)
    app.add_typer(group, name="schedule")

    @group.command("set")
    def set_(dealer: str = typer.Argument(..., help="The dealership's slug."),
             spec: str = typer.Argument(..., metavar="CRON",
                                        help="A cron line ('0 6 * * *') or an interval "
                                             "('30m', '6h'; 1m to 366d)."),
             tz: str | None = typer.Option(
                 None, "--tz", help="Timezone of the cron line (IANA; default: the "
                                    "dealership's, UTC for a new one).")
             ) -> None:
        """Give a dealership its schedule; the scheduler runs it from the next slot."""
        from jobs import service
        from jobs.scheduler import validate

        cron, interval = parse(spec)
        validate(cron, tz or "UTC", interval)
        with database() as conn:
            d = dealers_db.get(conn, dealer)
            if tz is None:  # keep the dealership's zone
                tz = d.schedule_tz or "UTC"
                validate(cron, tz, interval)
            service.reschedule(conn, d.id, cron, interval, tz)
        what = f"cron '{cron}' ({tz})" if cron else f"every {interval_text(interval)}"
        say(f"{dealer}: {what}")

    @group.command("pause")
    def pause(dealer: str = typer.Argument(..., help="The dealership's slug.")) -> None:
        """Stop scheduling a dealership and cancel its scheduled job still waiting to start
        (operator triggers still run)."""
        from jobs import service

        with database() as conn:
            d = dealers_db.get(conn, dealer)
            cancelled, running = service.pause(conn, d.id)
        say(f"{dealer}: paused")
        if cancelled is not None:
            say(f"{dealer}: cancelled its scheduled job {cancelled.id}, still "
                "waiting to start")
        if running is not None:
            say(f"{dealer}: job {running.id} is running; `forecourt jobs cancel "
                f"{running.id}` stops it")

    @group.command("resume")
    def resume(dealer: str = typer.Argument(..., help="The dealership's slug.")) -> None:
        """Schedule a paused dealership again, from its next slot (missed ones are skipped)."""
        from jobs import service

        with database() as conn:
            d = dealers_db.get(conn, dealer)
            service.resume(conn, d.id)
        none = "" if d.schedule_cron or d.schedule_interval_s else (
            f"; it has no schedule, so nothing runs (give it one: `forecourt schedule set "
            f"{dealer} 6h`)")
        say(f"{dealer}: resumed{none}")

    @group.command("list")
    def list_() -> None:
        """List dealerships' schedules and next runs."""
        table = Table(title="Schedules")
        for col in ("dealer", "schedule", "tz", "paused", "next run", "last run", "failing"):
            table.add_column(col)
        from crawler.config import get_settings

        with database() as conn:
            leaders = schedules_db.leaders(conn)
            scheduled = unset = 0
            for row in dealers_db.list_all(conn):
                if not (row["schedule_cron"] or row["schedule_interval_s"]):
                    continue
                st = schedules_db.state(conn, row["id"]) or {}
                next_run = moment(st.get("next_run_at"))
                if not row["paused"]:
                    scheduled += 1
                    if not st.get("next_run_at"):
                        unset += 1
                        if leaders:  # the leader sets it at its next tick
                            next_run = "next tick"
                table.add_row(row["slug"], row["schedule_cron"] or
                              f"every {interval_text(row['schedule_interval_s'])}",
                              row["schedule_tz"],
                              "yes" if row["paused"] else "no",
                              next_run, moment(st.get("last_run_at")),
                              failing(schedules_db.consecutive_failures(conn, row["id"])))
        console.print(table)
        warning = scheduler_warning(leaders, scheduled, unset,
                                    get_settings().scheduler_leader_stale_s)
        if warning:
            err_console.print(f"warning: {warning}", soft_wrap=True)
