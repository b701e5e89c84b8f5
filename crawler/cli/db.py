"""`forecourt db`: schema migrations and the embedded servers."""

from __future__ import annotations

import typer

from crawler import embedded
from crawler.cli.common import err_console, say
from crawler.config import get_settings
from crawler.db import connect, database_url, migrate
from crawler.db.migrate import ahead_warning, schema_state


def register(app: typer.Typer) -> None:
    db_app = typer.Typer(help="Database schema and embedded servers.", no_args_is_help=True)
    app.add_typer(db_app, name="db")

    @db_app.command("migrate")
    def migrate_cmd() -> None:
        """Apply pending schema migrations: the upgrade step, before new workers start (other
        commands refuse a database with migrations pending; they set up only an empty one)."""
        with connect() as conn:
            applied = migrate(conn, lock_timeout_s=get_settings().migrate_lock_timeout_s)
            warning = ahead_warning(schema_state(conn))
        if warning:
            err_console.print(warning, markup=False, soft_wrap=True)
        say(f"applied {len(applied)} migration(s)" +
            (": " + ", ".join(applied) if applied else "; schema is current"))

    @db_app.command("migrations")
    def migrations_cmd() -> None:
        """List schema migrations: applied (when), pending, or unknown to this forecourt
        (the database is newer than the code); applies none."""
        with connect() as conn:
            state = schema_state(conn)
        lines = [(row["name"], ("unknown to this forecourt" if row["name"] in state.unknown
                                else "applied") + f"  {row['applied_at']:%Y-%m-%d %H:%M:%S%z}")
                 for row in state.applied] + [(name, "pending") for name in state.pending]
        for name, status in sorted(lines):  # names start with their zero-padded version
            say(f"{name}  {status}")
        say(f"{len(state.applied) - len(state.unknown)} applied, "
            f"{len(state.pending)} pending, {len(state.unknown)} unknown" +
            ("; run `forecourt db migrate`" if state.pending else ""))

    @db_app.command("url")
    def url_cmd() -> None:
        """Print the database URL in use (starting the embedded server if needed)."""
        say(database_url())

    @db_app.command("stop")
    def stop_cmd() -> None:
        """Stop the embedded PostgreSQL and Redis (their data stays in the data directory)."""
        data_dir = get_settings().data_dir
        stopped = embedded.stop(data_dir)
        # with DATABASE_URL and REDIS_URL set there is nothing of forecourt's own to stop
        say(f"stopped the embedded {' and '.join(stopped)} in {data_dir}" if stopped
            else f"no embedded server was running in {data_dir}")

    @db_app.command("status")
    def status_cmd() -> None:
        """Say whether the embedded PostgreSQL and Redis run, starting neither."""
        settings = get_settings()
        running = embedded.status(settings.data_dir)
        external = {"PostgreSQL": settings.database_url and "DATABASE_URL",
                    "Redis": settings.redis_url and "REDIS_URL"}
        say(f"data directory {settings.data_dir}")
        for name, state in running.items():
            line = f"{name}: {'running, ' + state if state else 'not running'}"
            if external[name]:
                line += f" (not used: {external[name]} is set)"
            say(line)
