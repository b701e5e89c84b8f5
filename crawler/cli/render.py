"""Rich renderings shared by commands: live job progress and run summaries."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from crawler.cli.common import console
from crawler.models import Job

SUMMARY_COLUMNS = ("items", "added", "changed", "unchanged", "relisted", "removed", "rejected")


def moment(value: datetime | None) -> str:
    """A time as the CLI shows times: UTC, to the second; "-" for none."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def interval_text(seconds: int) -> str:
    """A schedule interval as `schedule set` takes it: in its largest whole unit (6h, not
    21600 s)."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def job_progress() -> Progress:
    # on the commands' console: piped or in a file, rich's own is 80 columns wide and cut
    # the status line short ("rejected 1 0:0…") above a summary table twice as wide
    return Progress(SpinnerColumn(), TextColumn("{task.description}", style="bold",
                                                markup=False), BarColumn(),
                    TextColumn("{task.fields[status]}", markup=False), TimeElapsedColumn(),
                    console=console, transient=False)


def status_line(job: Job) -> str:
    c = job.counters
    rendered = f" (rendered {c['rendered']})" if c.get("rendered") else ""
    return (f"{job.state}/{job.phase or '-'}  pages {c.get('pages', 0)}{rendered}  "
            f"items {c.get('items', 0)}  stored {c.get('upserted', 0)}  "
            f"rejected {c.get('rejected', 0)}")


def summary_table(rows: Iterable[tuple[str, Job]], title: str = "Run summary") -> Table:
    table = Table(title=title)
    table.add_column("dealer")
    table.add_column("job", justify="right")
    table.add_column("kind")
    table.add_column("state")
    for col in SUMMARY_COLUMNS:
        table.add_column(col, justify="right")
    table.add_column("verdict")
    for slug, job in rows:
        c = job.counters
        table.add_row(slug, str(job.id), job.kind, job.state,
                      *(str(c.get(k, 0)) for k in SUMMARY_COLUMNS),
                      ": ".join(filter(None, (job.verdict, job.error))) or "-")
    return table
