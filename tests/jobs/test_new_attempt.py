"""A new attempt of a job starts without its previous attempt's outcome: while a retry runs,
the job record (what the API, `jobs show` and the dealer UI read) showed the failed
attempt's verdict, report, error and error kind beside state `running`. The error history
keeps every attempt's error, and whatever reads "the newest error" reads it from there."""

from __future__ import annotations

import os
import subprocess

import pytest

from crawler.db import dealers as dealers_db
from crawler.db import job_queue as queue_db
from crawler.db import jobs as jobs_db
from tests.jobs.conftest import FORECOURT

ERROR = "listing page https://acme.test/ failed: HTTP 503"
OUTCOME = ("verdict", "report", "error", "error_kind")


def _failed_first_attempt(db, slug: str = "acme"):
    """A queued crawl whose first attempt the gate judged failed, requeued for its retry:
    the worker's own calls, in order."""
    dealer = dealers_db.create(db, slug=slug, name=slug, website_url=f"https://{slug}.test/",
                               schedule_interval_s=3600)
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "schedule")
    queue_db.set_message(db, job.id, "scheduled", "m1")
    assert queue_db.claim(db, job.id, "w1", 60, "m1") is not None
    jobs_db.finish(db, job.id, "failed", counters={"items": 0}, verdict="failed",
                   report={"verdict": "failed", "reasons": [ERROR]}, error=ERROR,
                   error_kind="failed")
    queued = queue_db.requeue(db, job.id, 0)
    assert queued.state == "queued" and queued.error == ERROR, "the wait shows why"
    return dealer, job


def _outcome(job) -> dict:
    return {field: getattr(job, field) for field in OUTCOME}


def test_a_retry_runs_without_the_failed_attempts_verdict_and_error(db):
    dealer, job = _failed_first_attempt(db)
    retry = queue_db.claim(db, job.id, "w2", 60, "m1")
    assert (retry.state, retry.attempts) == ("running", 2)
    assert _outcome(retry) == dict.fromkeys(OUTCOME), "running, yet showing attempt 1's end"
    assert _outcome(jobs_db.get(db, job.id)) == dict.fromkeys(OUTCOME)
    [first] = retry.errors
    assert (first["attempt"], first["kind"], first["error"]) == (1, "failed", ERROR)
    # what the retry ends with is its own
    ended = jobs_db.finish(db, job.id, "succeeded", counters={"items": 9}, verdict="healthy",
                           report={"verdict": "healthy", "reasons": []})
    assert (ended.verdict, ended.error, ended.error_kind) == ("healthy", None, None)
    assert len(ended.errors) == 1


@pytest.mark.parametrize("how", ["take_over", "claim"])
def test_an_interrupted_attempt_taken_over_starts_without_an_earlier_outcome(db, how):
    """A running job whose worker died is started again by a take-over (a scheduled slot)
    or a claim (its redelivered message). A running row may still carry an earlier
    attempt's outcome (claimed by a version that did not clear it): it goes too."""
    dealer, job = _failed_first_attempt(db)
    queue_db.claim(db, job.id, "w2", 60, "m1")
    db.execute("UPDATE jobs SET verdict = 'failed', error = %s, error_kind = 'failed',"
               " report = '{\"verdict\": \"failed\"}', heartbeat_at = now() - interval '1 hour'"
               " WHERE id = %s", (ERROR, job.id))
    again = (queue_db.take_over(db, job.id, "w3", 60, "m2") if how == "take_over"
             else queue_db.claim(db, job.id, "w3", 60, "m1"))
    assert again is not None and (again.state, again.attempts) == ("running", 3)
    assert _outcome(again) == dict.fromkeys(OUTCOME)
    assert [(e["attempt"], e["kind"]) for e in again.errors] == [(1, "failed"), (2, "abandoned")]


def test_a_job_started_at_the_terminal_starts_without_an_outcome(db):
    dealer = dealers_db.create(db, slug="here", name="Here", website_url="https://here.test/")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
    db.execute("UPDATE jobs SET verdict = 'failed', error = 'old', error_kind = 'failed'"
               " WHERE id = %s", (job.id,))
    assert _outcome(jobs_db.start(db, job.id, "cli@here:1")) == dict.fromkeys(OUTCOME)


def test_jobs_show_of_a_running_retry_has_no_error_but_lists_the_last_one(db):
    dealer, job = _failed_first_attempt(db)
    queue_db.claim(db, job.id, "w2", 60, "m1")
    shown = subprocess.run([FORECOURT, "jobs", "show", str(job.id)], capture_output=True,
                           text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in shown.stdout.splitlines() if line.count("│") == 3}
    assert (rows["state"], rows["verdict"], rows["error"], rows["error kind"]) == \
        ("running", "-", "-", "-"), rows
    assert rows["error #1"].startswith(f"attempt 1 failed: {ERROR}"), rows


def test_stale_dealers_name_the_error_of_an_attempt_whose_retry_is_running(db):
    """`dealers list --stale` names the newest error since the last success: while the
    retry runs, attempt 1's, from the job's error history."""
    dealer, job = _failed_first_attempt(db)
    queue_db.claim(db, job.id, "w2", 60, "m1")
    [row] = [r for r in dealers_db.freshness(db) if r["id"] == dealer.id]
    assert (row["error_job_id"], row["last_error"]) == (job.id, ERROR)


def _totals(db) -> dict:
    return {(r["state"], r["le"] if r["le"] == r["le"] else "never ran"):
            (r["finished"], r["upserted"], r["rejected"])
            for r in db.execute("SELECT * FROM job_totals WHERE kind = 'crawl'").fetchall()}


def test_a_cancelled_retry_says_which_attempt_never_ran_and_is_counted_once(db):
    """Cancelling a job queued for its retry recorded "cancelled before it ran" (attempt 1
    had run), left its retry time on show, and /metrics counted the cancel as one more
    attempt, timed from attempt 1's start through its backoff, with attempt 1's vehicles
    and rejects counted again."""
    from jobs import service

    dealer = dealers_db.create(db, slug="acme", name="acme", website_url="https://acme.test/")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "schedule")
    queue_db.set_message(db, job.id, "scheduled", "m1")
    queue_db.claim(db, job.id, "w1", 60, "m1")
    jobs_db.finish(db, job.id, "failed", counters={"items": 9, "upserted": 7, "rejected": 2},
                   verdict="failed", report={"verdict": "failed", "reasons": [ERROR]},
                   error=ERROR, error_kind="failed")
    queue_db.requeue(db, job.id, 600)
    before = _totals(db)
    cancelled = service.cancel(db, job.id)
    assert cancelled.state == "cancelled" and cancelled.error_kind == "cancelled"
    assert cancelled.error == f"cancelled before attempt 2 ran; attempt 1 failed: {ERROR}"
    assert cancelled.verdict == "failed"  # the latest attempt's, as the API documents it
    assert cancelled.retry_at is None
    after = _totals(db)
    grown = {k: v for k, v in after.items() if v != before.get(k)}
    assert grown == {("cancelled", "never ran"): (1, 0, 0)}, (before, after)
    shown = subprocess.run([FORECOURT, "jobs", "show", str(job.id)], capture_output=True,
                           text=True, timeout=60, env={**os.environ, "COLUMNS": "300"})
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in shown.stdout.splitlines() if line.count("│") == 3}
    assert rows["retry at"] == "-" and rows["error"].startswith(
        "cancelled before attempt 2 ran; attempt 1 failed"), rows
    # a job cancelled before its first attempt: as before
    fresh, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
    assert service.cancel(db, fresh.id).error == "cancelled before it ran"
