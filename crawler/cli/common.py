"""What every command shares: the console, one-line errors, a migrated connection."""

from __future__ import annotations

import sys
from contextlib import contextmanager

import psycopg
from rich.console import Console

from crawler.db import connect, migrate

# Wide enough for summary tables when the output is a file or a pipe (transcripts, CI).
# No rich markup: what the consoles print is data (dealer names, feed columns, URLs, token
# labels, errors) in which '[...]' is text; styles are given as Text objects or style=.
console = Console(highlight=False, soft_wrap=False, markup=False,
                  width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False, markup=False)


def fail(message: str, hint: str | None, code: int = 1) -> int:
    """Print one readable error line (with the fix) to stderr; return the exit code."""
    line = f"error: {message}"
    if hint:
        line += f" ({hint})"
    err_console.print(line, markup=False, soft_wrap=True)
    return code


@contextmanager
def database():
    """A connection to a migrated database (migrations are applied on first use)."""
    conn = connect()
    try:
        migrate(conn)
        yield conn
    finally:
        conn.close()


def interactive() -> bool:
    return sys.stdout.isatty()


def connection_hint(exc: psycopg.Error) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def price_text(value) -> str:
    """A price as the CLI shows it: thousands separated, cents only where there are some
    (24,995 and 24,995.50; JSON's 24995.0 too)."""
    return f"{value:,.2f}".removesuffix(".00")
