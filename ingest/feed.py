"""The feed loop: read a feed in batches, run every pipeline stage, settle the run."""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

import psycopg

from crawler.config import get_settings
from crawler.models import Reject, VehicleItem
from crawler.db import rejects as rejects_db
from ingest import mapping as mapping_mod
from ingest import readers
from pipelines import run as run_mod


def ingest(conn: psycopg.Connection, dealership_id: int, job_id: int, source: str | Path, *,
           fmt: str | None = None, mapping: dict[str, Any] | None = None,
           on_batch: Callable[[dict[str, int]], None] | None = None) -> dict[str, Any]:
    """Ingest one feed file for one dealership as job `job_id`; returns the run report."""
    path = Path(source)
    batch_size = get_settings().batch_size
    run = run_mod.open_run(conn, dealership_id, job_id, "feed", vins_only=True)
    run_mod.report_progress(run, phase="ingesting", force=True)
    rows = readers.read(path, fmt)
    resolved: dict[str, str] | None = None
    complete = True
    problems: list[str] = []
    while True:
        chunk = list(islice(rows, batch_size))
        if not chunk:
            break
        if resolved is None:
            columns = list(chunk[0][1].keys())
            chosen = mapping or mapping_mod.BUILTIN[mapping_mod.detect(columns)]
            resolved = mapping_mod.resolve(chosen, columns)
            run.counters["unknown_columns"] = len(mapping_mod.unknown_columns(resolved, columns))
        items: list[VehicleItem] = []
        broken: list[Reject] = []
        for number, row in chunk:
            if "__error__" in row:
                broken.append(Reject(source=f"row {number}", reasons=[row["__error__"]]))
            else:
                items.append(mapping_mod.to_item(row, resolved, f"row {number}"))
        if broken:
            rejects_db.add(conn, dealership_id, job_id, broken)
            run.counters["items"] += len(broken)
            run.counters["rejected"] += len(broken)
        run_mod.process(run, items)
        if on_batch is not None:
            on_batch(dict(run.counters))
    report = run_mod.close(run, complete=complete, problems=problems)
    return report


def run_job(conn: psycopg.Connection, job_id: int, source: str | Path, *,
            fmt: str | None = None, mapping: dict[str, Any] | None = None,
            on_batch: Callable[[dict[str, int]], None] | None = None):
    """Run a started feed job to its end and settle its record; returns the job."""
    from crawler.db import jobs as jobs_db
    from crawler.errors import ForecourtError

    job = jobs_db.get(conn, job_id)
    try:
        report = ingest(conn, job.dealership_id, job_id, source, fmt=fmt, mapping=mapping,
                        on_batch=on_batch)
    except (ForecourtError, OSError, ValueError) as exc:
        job = jobs_db.get(conn, job_id)
        return jobs_db.finish(conn, job_id, "failed", counters=job.counters,
                              error=str(exc), error_kind=type(exc).__name__)
    ok = report["state"] == "succeeded"
    return jobs_db.finish(conn, job_id, report["state"], counters=report["counters"],
                          verdict=report["verdict"], report=report,
                          error=None if ok else ("; ".join(report["reasons"]) or None),
                          error_kind=None if ok else report["state"])
