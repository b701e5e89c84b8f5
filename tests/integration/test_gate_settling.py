"""A count that settles at a new level, an operator's `quality accept`, and the first run of
one kind for a dealer stocked by the other (real PostgreSQL, a real local webhook server).
Several of these were found by a review of the settle rule (revops)."""

from __future__ import annotations

import pytest

from crawler.cli import main
from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from pipelines import run as run_mod
from tests.integration.test_gate_runs import HONDAS, Hook, active, baseline, item, run

pytestmark = pytest.mark.integration


@pytest.fixture
def dealer(db):
    return dealers_db.create(db, slug="honda-town", name="Honda Town",
                             website_url="https://honda.test/")


def a_day_passes(db, dealer_id: int) -> None:
    db.execute("UPDATE jobs SET finished_at = finished_at - interval '1 day'"
               " WHERE dealership_id = %s", (dealer_id,))


def daily(db, dealer_id: int, items: list, days: int) -> list[dict]:
    out = []
    for _ in range(days):
        a_day_passes(db, dealer_id)
        out.append(run(db, dealer_id, items))
    return out


def kind_run(db, dealer_id: int, items: list, kind: str) -> dict:
    job, created = jobs_db.create_or_get_active(db, dealer_id, kind, "operator")
    assert created
    jobs_db.start(db, job.id, "test")
    r = run_mod.open_run(db, dealer_id, job.id, kind)
    run_mod.process(r, items)
    report = run_mod.close(r, complete=True)
    jobs_db.finish(db, job.id, report["state"], counters=report["counters"],
                   verdict=report["verdict"], report=report)
    report["job_id"] = job.id
    return report


def test_a_run_repeated_within_minutes_never_settles(db, dealer):
    """A spider that stopped reading the used-car pages finds the same half of the lot
    every run: re-run three times in minutes (an operator looking at a degraded crawl, a
    short schedule) it removed the other half. A new level must last a day."""
    baseline(db, dealer.id, runs=3)
    half = [item(r) for r in HONDAS[:25]]
    reports = [run(db, dealer.id, half) for _ in range(4)]
    assert all(r["verdict"] == "degraded" and r["removed"] == 0 for r in reports)
    assert not any(r.get("settled") for r in reports)
    assert active(db, dealer.id) == 50


def test_a_settled_run_notifies_and_says_so_everywhere(db, dealer, capsys):
    hook = Hook()
    try:
        dealers_db.update(db, dealer.id, webhook_url=hook.url)
        baseline(db, dealer.id, runs=3)
        reports = daily(db, dealer.id, [item(r) for r in HONDAS[:25]], days=3)
        settled = reports[-1]
        assert settled["verdict"] == "healthy" and settled["removed"] == 25
        assert "3 runs in a row (25, 25, 25)" in settled["settled"]
        events = [(b["event"], b["job_id"]) for b in hook.bodies]
        assert events[-1] == ("run.settled", settled["job_id"])  # the removal is news
        assert [e for e, _ in events[:-1]] == ["run.unhealthy", "run.unhealthy"]
        assert hook.bodies[-1]["removed"] == 25 and hook.bodies[-1]["settled"]
    finally:
        hook.close()
    capsys.readouterr()
    assert main(["quality", "honda-town", "--job", str(settled["job_id"])]) == 0
    out = capsys.readouterr().out
    assert "settled at a new level" in out and "accepted by the gate" in out
    assert "healthy run(s)" not in out  # the three runs it rests on were degraded
    assert main(["jobs", "show", str(settled["job_id"])]) == 0
    assert "settled" in capsys.readouterr().out
    assert main(["quality", "accept", "honda-town", "--job", str(settled["job_id"])]) == 1
    assert "settled at a new level by the gate" in capsys.readouterr().err


def test_a_warning_does_not_keep_a_count_from_settling(db, dealer):
    baseline(db, dealer.id, runs=3)
    for _ in range(3):
        a_day_passes(db, dealer.id)
        job, _ = jobs_db.create_or_get_active(db, dealer.id, "feed", "operator")
        jobs_db.start(db, job.id, "test")
        r = run_mod.open_run(db, dealer.id, job.id, "feed")
        run_mod.process(r, [item(x) for x in HONDAS[:25]])
        report = run_mod.close(r, complete=True,
                               problems=["warning: sitemap https://honda.test/s.xml not read"])
        jobs_db.finish(db, job.id, report["state"], counters=report["counters"],
                       verdict=report["verdict"], report=report)
    assert report.get("settled") and report["removed"] == 25


def test_the_first_feed_run_of_a_crawled_dealer_is_judged_against_its_stock(db, dealer):
    """The gate's baseline is per kind: a dealer crawled for months whose feed is then
    ingested (`dealers set --feed F --schedule feed`, or once by hand) had no feed baseline,
    and a feed of 10 removed 40 of its 50 crawled cars."""
    for _ in range(3):
        assert kind_run(db, dealer.id, [item(r) for r in HONDAS[:50]], "crawl")["verdict"] \
            == "healthy"
    small = kind_run(db, dealer.id, [item(r) for r in HONDAS[:10]], "feed")
    assert small["verdict"] == "degraded" and small["removed"] == 0
    assert "judged against the 50 active vehicles" in small["baseline_note"]
    assert active(db, dealer.id) == 50
    whole = kind_run(db, dealer.id, [item(r) for r in HONDAS[:48]], "feed")
    assert whole["verdict"] == "healthy" and whole["removed"] == 2  # the feed lists 48


def test_accepting_a_run_older_than_the_baseline_is_refused(db, dealer, capsys):
    baseline(db, dealer.id, runs=3)
    reports = daily(db, dealer.id, [item(r) for r in HONDAS[:25]], days=3)
    assert reports[-1].get("settled")
    code = main(["quality", "accept", "honda-town", "--job", str(reports[0]["job_id"])])
    err = capsys.readouterr().err
    assert code == 1 and f"older than job {reports[-1]['job_id']}" in err
    assert "Traceback" not in err


def test_a_kind_whose_healthy_runs_predate_the_other_kinds_is_judged_against_the_stock(
        db, dealer):
    """A dealer crawled (10 cars) and then fed for months (50 cars): its crawl baseline is
    the old one, so a crawl run by hand that finds the 10 again was judged healthy against
    it and removed the other 40 the feed stocks."""
    for _ in range(3):
        assert kind_run(db, dealer.id, [item(r) for r in HONDAS[:10]], "crawl")["verdict"] \
            == "healthy"
    kind_run(db, dealer.id, [item(r) for r in HONDAS[:50]], "feed")
    assert kind_run(db, dealer.id, [item(r) for r in HONDAS[:50]], "feed")["verdict"] \
        == "healthy"
    again = kind_run(db, dealer.id, [item(r) for r in HONDAS[:10]], "crawl")
    assert again["verdict"] == "degraded" and again["removed"] == 0
    assert "judged against the 50 active vehicles" in again["baseline_note"]
    assert active(db, dealer.id) == 50
