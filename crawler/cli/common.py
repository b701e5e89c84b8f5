"""What every command shares: the console, one-line errors, a migrated connection."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import psycopg
from rich.console import Console
from rich.text import Text

from crawler.config import get_settings
from crawler.db import connect
from crawler.db.migrate import ahead_warning, check

# Wide enough for summary tables when the output is a file or a pipe (transcripts, CI).
# No rich markup: what the consoles print is data (dealer names, feed columns, URLs, token
# labels, errors) in which '[...]' is text; styles are given as Text objects or style=.
console = Console(highlight=False, soft_wrap=False, markup=False,
                  width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False, markup=False)


def say(text: str) -> None:
    """Print a line of text (a message, a URL, a token) as one line however long: piped or
    in a file the console is 160 columns wide, and rich would break a longer one in two
    (a URL `psql "$(forecourt db url)"` could not use, a command split mid-name)."""
    console.print(text, markup=False, soft_wrap=True)


def busy(what: str):
    """A spinner naming what a command waits for (a page being fetched), on stderr while it
    lasts; nothing when stderr is not a terminal."""
    return err_console.status(Text(what), spinner="dots")


def fail(message: str, hint: str | None, code: int = 1) -> int:
    """Print one readable error line (with the fix) to stderr; return the exit code."""
    line = f"error: {message}"
    if hint:
        line += f" ({hint})"
    err_console.print(line, markup=False, soft_wrap=True)
    return code


def check_environment() -> None:
    """Settings valid (else ConfigError, one line), and a warning for each variable that
    looks like a misspelt setting."""
    from crawler.config import get_settings
    from crawler.config_errors import unknown_variables

    get_settings()
    for warning in unknown_variables(os.environ):
        err_console.print(f"warning: {warning}", markup=False, soft_wrap=True)


@contextmanager
def database():
    """A connection to a database whose schema is this code's: a new, empty one is set up;
    one with migrations pending is refused (only `forecourt db migrate` applies them to a live
    schema), except on the embedded server, whose pending migrations are applied; one with
    migrations this code does not know gets a one-line warning."""
    conn = connect()
    try:
        settings = get_settings()
        warning = ahead_warning(check(conn, apply_pending=settings.database_url is None,
                                      lock_timeout_s=settings.migrate_lock_timeout_s))
        if warning:
            err_console.print(warning, markup=False, soft_wrap=True)
        yield conn
    finally:
        conn.close()


JOB_HELP = ("The job's number, or its public id (the UUID the HTTP API and the dealer UI "
            "show).")


def job_number(conn, given: str) -> int:
    """The number of the job an operator named: by its number, or by the public id a dealer
    reported (the API names jobs by it); NotFound or InvalidInput as one line otherwise."""
    import uuid

    from crawler.db import jobs as jobs_db
    from crawler.errors import InvalidInput

    text = given.strip()
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        public_id = uuid.UUID(text)
    except ValueError:
        raise InvalidInput(f"{given!r} is not a job's number or public id",
                           hint="give the number `forecourt jobs list` shows, or the UUID "
                                "the API shows") from None
    return jobs_db.id_of_public(conn, public_id)


def interactive() -> bool:
    return sys.stdout.isatty()


def connection_hint(exc: psycopg.Error) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def price_text(value) -> str:
    """A price as the CLI shows it: thousands separated, cents only where there are some
    (24,995 and 24,995.50; JSON's 24995.0 too)."""
    return f"{value:,.2f}".removesuffix(".00")
