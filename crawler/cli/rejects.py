"""`forecourt rejects`: the rows and items a dealership's runs could not store, with every
reason and the start of the raw row, newest job first."""

from __future__ import annotations

import re

import typer
from rich.table import Table

from crawler.cli.common import console, database
from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from crawler.db import rejects as rejects_db
from crawler.errors import InvalidInput
from crawler.logging import redact

EXCERPT_CHARS = 60
_SPACE = re.compile(r"\s+")


def excerpt(text: str | None, chars: int = EXCERPT_CHARS) -> str:
    """The start of a raw row on one line, cut with an ellipsis."""
    if not text:
        return "-"
    line = _SPACE.sub(" ", text).strip()
    return line if len(line) <= chars else line[:chars - 1] + "…"


def register(app: typer.Typer) -> None:
    @app.command("rejects")
    def rejects(
        slug: str = typer.Argument(..., help="The dealership's slug."),
        job: int | None = typer.Option(None, "--job", help="Only this job's rejects."),
        limit: int = typer.Option(50, "--limit", "-n", min=1, max=100_000,
                                  help="How many, newest job first."),
    ) -> None:
        """Show what a dealership's runs rejected: the source (feed row number or page
        URL), every reason, and the start of the raw row; newest job first."""
        with database() as conn:
            dealer = dealers_db.get(conn, slug)
            if job is not None:
                owner = jobs_db.get(conn, job).dealership_id
                if owner != dealer.id:
                    other = dealers_db.get_by_id(conn, owner).slug
                    raise InvalidInput(f"job {job} belongs to dealership {other}, not {slug}",
                                       hint=f"see `forecourt rejects {other} --job {job}`")
            rows = rejects_db.newest(conn, dealer.id, job, limit,
                                     chars=EXCERPT_CHARS * 4)
            total = rejects_db.count_upto(conn, dealer.id, job) if len(rows) == limit \
                else len(rows)
        of_job = f" of job {job}" if job else ""
        if total == len(rows):
            title = f"{dealer.name}: {len(rows)} reject(s){of_job}"
        elif total is None:  # past rejects.COUNT_UPTO: not counted
            title = f"{dealer.name}: the newest {limit}{of_job} (more: --limit)"
        else:
            title = f"{dealer.name}: the newest {limit} of {total:,} rejects{of_job}"
        table = Table(title=title)
        for col in ("job", "source", "reasons", "raw"):
            table.add_column(col, overflow="fold", justify="right" if col == "job" else "left")
        for r in rows:  # rows and URLs come from dealers' feeds and sites: text, not markup
            table.add_row(str(r["job_id"] or "-"), redact(r["source"] or "-"),
                          "; ".join(r["reasons"]), excerpt(r["excerpt"]))
        console.print(table)
