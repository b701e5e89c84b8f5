"""Helpers shared by the crawl integration tests: run a crawl job, read what it stored."""

from __future__ import annotations

import shutil

from crawler.config import PROJECT_ROOT
from crawler.crawl_runner import run_crawl
from crawler.db import jobs as jobs_db

SITES = PROJECT_ROOT / "fixtures" / "sites"


def copy_site(tmp_path, name: str):
    """A fixture site copied for a test to break (fixtures/sites/<name>)."""
    target = tmp_path / name
    shutil.copytree(SITES / name, target)
    return target


def active_vins(db, dealer_id: int) -> set[str]:
    return {r["vin"] for r in db.execute(
        "SELECT vin FROM vehicles WHERE dealership_id = %s AND status = 'active'",
        (dealer_id,))}


def crawl(db, dealer_id: int):
    """Create the dealer's crawl job, start it, and run it to its settled record."""
    job, created = jobs_db.create_or_get_active(db, dealer_id, "crawl", "operator")
    assert created
    jobs_db.start(db, job.id, "test")
    return run_crawl(job.id, time_limit_s=120)


def vehicles_by_vin(db, dealer_id: int) -> dict[str, dict]:
    rows = db.execute("SELECT * FROM vehicles WHERE dealership_id = %s", (dealer_id,)).fetchall()
    return {r["vin"]: r for r in rows}


def logged_stats(job_id: int) -> dict[str, int]:
    """Integer stats from the crawl's final 'Dumping Scrapy stats' log record."""
    import json
    import re

    from crawler.crawl_runner import log_path

    dump = next(json.loads(line)["msg"] for line in reversed(
        log_path(job_id).read_text().splitlines()) if "Dumping Scrapy stats" in line)
    return {k: int(v) for k, v in re.findall(r"'([^']+)': (\d+)\b(?![.:-])", dump)}
