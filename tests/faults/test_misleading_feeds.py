"""Feeds that read perfectly well and are still wrong: the same cars listed twice, another
dealer's file sent by mistake. Each keeps the usual row count, so only what the run would
do to the stored inventory tells them apart from a good day: nothing live is removed."""

from __future__ import annotations

import csv
import sys

import pytest

from crawler.config import PROJECT_ROOT
from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from ingest import feed_job

sys.path.insert(0, str(PROJECT_ROOT / "fixtures" / "tools"))
import make_feed  # noqa: E402

pytestmark = pytest.mark.integration

OURS = list(make_feed.rows(20, seed=7))
THEIRS = list(make_feed.rows(20, seed=99))  # another dealer's lot: every VIN different


@pytest.fixture
def ingest(db, tmp_path):
    dealer = dealers_db.create(db, slug="lot", name="Lot")
    names = iter(range(1000))

    def run(rows: list[list[str]]):
        path = tmp_path / f"feed{next(names)}.csv"
        with path.open("w", newline="") as f:
            csv.writer(f).writerows([make_feed.HEADER, *rows])
        job, _ = jobs_db.create_or_get_active(db, dealer.id, "feed", "operator")
        jobs_db.start(db, job.id, "test")
        return feed_job.run_job(db, job.id, path)

    job = run(OURS)
    assert job.state == "succeeded" and job.counters["added"] == 20
    return dealer, run


def active(db, dealer) -> set[str]:
    return {r["vin"] for r in db.execute(
        "SELECT vin FROM vehicles WHERE dealership_id = %s AND status = 'active'",
        (dealer.id,))}


def removed_events(db, dealer) -> int:
    return db.execute("SELECT count(*) AS n FROM vehicle_events WHERE dealership_id = %s"
                      " AND kind = 'removed'", (dealer.id,)).fetchone()["n"]


def test_half_the_lot_listed_twice_is_half_the_lot_and_removes_nothing(db, ingest):
    """An export that writes 10 of the 20 cars twice has 20 rows: counted as 20 vehicles it
    passed the gate's count and removed the other 10."""
    dealer, run = ingest
    job = run(OURS[:10] + OURS[:10])
    assert job.counters["duplicates"] == 10
    assert job.state == "partial" and job.verdict == "degraded", job.report["reasons"]
    assert "10 vehicles against a usual 20" in job.error
    assert job.counters["removed"] == 0 and removed_events(db, dealer) == 0
    assert len(active(db, dealer)) == 20


def test_another_dealers_feed_removes_nothing_however_often_it_comes(db, ingest):
    """Another dealer's feed of the same size: the count and coverage are as usual, but the
    run would remove every car the dealer has. Held back; so is the same file again, when the
    strangers' cars it added are active too; an operator who accepts it has the next run
    remove the old lot."""
    dealer, run = ingest
    ours = active(db, dealer)
    for _ in range(2):
        job = run(THEIRS)
        assert job.state == "partial" and job.verdict == "degraded", job.report["reasons"]
        assert "would replace 20 of the 20 vehicles" in job.error
        assert job.counters["removed"] == 0 and removed_events(db, dealer) == 0
        assert ours <= active(db, dealer)
    from crawler.cli import main

    assert main(["quality", "accept", "lot"]) == 0
    job = run(THEIRS)
    assert job.state == "succeeded" and job.counters["removed"] == 20
    assert active(db, dealer) == {r[make_feed.HEADER.index("VIN")] for r in THEIRS}


def test_an_ordinary_day_of_sales_still_removes(db, ingest):
    """Five of twenty sold, five new: removed as before."""
    dealer, run = ingest
    job = run(OURS[5:] + THEIRS[:5])
    assert job.state == "succeeded" and job.verdict == "healthy", job.report["reasons"]
    assert job.counters["removed"] == 5 and removed_events(db, dealer) == 5
