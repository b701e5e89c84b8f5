"""A crawl child knows which attempt it runs for (real PostgreSQL, a real crawl child and a
fixture site).

A worker that stalls while its crawl child starts (a paused or starved machine: only the
worker heartbeats the job until the child opens its spider) has its attempt taken over by
another worker. The soak (bench/bench_soak.py --stall-every) saw this: the first child,
which read the job only once it had started, took the successor's attempt number for its
own, so nothing fenced it: it could crawl, record progress and settle the job as that
attempt, beside the crawl that really runs it, until its stalled worker woke and killed it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from crawler import crawl_process
from crawler.config import PROJECT_ROOT
from crawler.crawl_runner import child_env
from crawler.db import dealers as dealers_db
from crawler.db import job_queue as queue_db
from crawler.db import jobs as jobs_db
from tests.jobs.conftest import AT_ONCE, site_copy, slow_routes, wait_for


def _claimed(db, dealership_id: int):
    """The dealer's crawl job, its attempt 1 claimed by worker w1."""
    job, _ = jobs_db.create_or_get_active(db, dealership_id, "crawl", "schedule")
    queue_db.set_message(db, job.id, "scheduled", "m1")
    job = queue_db.claim(db, job.id, "w1:1:T", 60, "m1")
    assert job.attempts == 1
    return job


def _take_over(db, job_id: int) -> None:
    """What another worker does once w1 looks stalled: attempt 2 is w2's (in one
    transaction, as the child's own progress beats the job too)."""
    with db.transaction():
        db.execute("UPDATE jobs SET heartbeat_at = now() - interval '1 minute'"
                   " WHERE id = %s", (job_id,))
        assert queue_db.take_over(db, job_id, "w2:2:T", 30, "m2").attempts == 2


def _child(job_id: int, log: Path) -> subprocess.Popen:
    """Attempt 1's crawl child, its log (text lines) in `log`."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "crawler.crawl_process", str(job_id), "1"],
            env={**child_env(), "FORECOURT_LOG_FORMAT": "text"}, cwd=str(PROJECT_ROOT),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _left_to_attempt_two(db, job_id: int, code: int, text: str, line: str):
    """Attempt 1's child stopped as a taken-over one does (exit status, its one line, no
    traceback) and left the job running as attempt 2's; the job."""
    after = jobs_db.get(db, job_id)
    assert (after.state, after.attempts, after.worker) == ("running", 2, "w2:2:T"), \
        (after.state, after.error)
    assert code == crawl_process.TAKEN_OVER_EXIT, text[-3000:]
    assert line in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    return after


def test_a_crawl_child_whose_attempt_was_taken_over_before_it_started_crawls_nothing(
        db, site):
    dealer = dealers_db.create(db, slug="stalled", name="Stalled",
                               website_url=site("generic") + "/inventory/")
    job = _claimed(db, dealer.id)
    # its worker stalls while its child starts: another worker takes the attempt over
    _take_over(db, job.id)
    # attempt 1's child, which had not read the job yet, gets that far only now
    subprocess.run([sys.executable, "-m", "crawler.crawl_process", str(job.id), "1"],
                   env=child_env(), cwd=str(PROJECT_ROOT), check=True, timeout=300,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = jobs_db.get(db, job.id)
    assert (after.state, after.attempts, after.worker) == ("running", 2, "w2:2:T"), \
        (after.state, after.error)
    assert after.counters == {}  # attempt 2's live counters, untouched
    assert not db.execute("SELECT 1 FROM vehicles WHERE dealership_id = %s",
                          (dealer.id,)).fetchall()


def _written(db, dealership_id: int) -> tuple[list, list]:
    vehicles = db.execute("SELECT vin, last_job_id, last_seen FROM vehicles"
                          " WHERE dealership_id = %s ORDER BY vin", (dealership_id,)).fetchall()
    events = db.execute("SELECT id, vin, kind FROM vehicle_events WHERE dealership_id = %s"
                        " ORDER BY id", (dealership_id,)).fetchall()
    return vehicles, events


def test_a_crawl_child_taken_over_mid_crawl_stores_no_further_batch_and_stops(
        db, site, tmp_path):
    # one vehicle a batch, the pages answering about a second apart: the crawl is storing
    # vehicles one by one when its attempt is taken over
    base = site(site_copy(tmp_path, slow_routes(0.2, step_s=1.0)))
    settings = {"scrapy": {**AT_ONCE["scrapy"], "FORECOURT_BATCH_SIZE": 1}}
    dealer = dealers_db.create(db, slug="resumed", name="Resumed",
                               website_url=base + "/inventory/", settings=settings)
    job = _claimed(db, dealer.id)
    log = tmp_path / "child.log"
    child = _child(job.id, log)
    try:
        wait_for(lambda: _written(db, dealer.id)[0], timeout=120, what="a first batch")
        # its worker stalled past the stale limit: another worker takes the attempt over
        # (the child's own progress beats the job too: both in one transaction)
        _take_over(db, job.id)
        at_take_over = _written(db, dealer.id)
        assert len(at_take_over[0]) < 10  # the crawl had more to store
        code = child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    text = log.read_text(errors="replace")
    assert _written(db, dealer.id) == at_take_over, text[-3000:]
    after = _left_to_attempt_two(db, job.id, code, text,
                                 f"job {job.id} attempt 1 was taken over by attempt 2: stopping")
    assert after.counters == {}  # attempt 2's live counters, untouched


def test_a_crawl_child_taken_over_before_it_settles_says_so_and_exits_taken_over(
        db, site, tmp_path):
    """Taken over with no batch left to refuse (here: its only listing page, slow, lists
    nothing), the child's settling was refused as it should be, but it exited 0 without a
    word: its worker's log never said why the job was not settled. Now it says so in one
    line and exits as a taken-over child does."""
    root = site_copy(tmp_path, {"/inventory/": {"delay_s": 4}}, sitemaps=False)
    (root / "inventory" / "index.html").write_text(
        "<!doctype html><html><head><title>Inventory</title></head><body><main>"
        "<h1>Inventory</h1><p>No vehicles found.</p></main></body></html>")
    dealer = dealers_db.create(db, slug="late", name="Late",
                               website_url=site(root) + "/inventory/")
    job = _claimed(db, dealer.id)
    log = tmp_path / "child.log"
    child = _child(job.id, log)
    try:
        wait_for(lambda: jobs_db.get(db, job.id).phase == "crawling", timeout=120,
                 what="the child to open its spider")
        _take_over(db, job.id)
        code = child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    _left_to_attempt_two(db, job.id, code, log.read_text(errors="replace"),
                         f"job {job.id} attempt 1 was taken over before it settled: stopping")
