"""A failed attempt whose retry is refused because the dealership has a newer active job (a
scheduled slot, an operator's trigger, a replay of it) is not retried, and says so at once:
it stayed `failed` with its transient kind, so followers and the API waited on a worker that
would never act, and the reaper tried to retry it on every pass (real PostgreSQL, Redis)."""

from __future__ import annotations

from crawler.db import dealers as dealers_db
from crawler.db import job_queue as queue_db
from crawler.db import jobs as jobs_db


def _failed_transiently(db, slug: str):
    dealer = dealers_db.create(db, slug=slug, name=slug, website_url=f"https://{slug}.test/")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "api")
    queue_db.set_message(db, job.id, "priority", "m1")
    assert queue_db.claim(db, job.id, "w1", 60, "m1") is not None
    return dealer, queue_db.fail_running(db, job.id, "listing page timed out",
                                        "transient:TimeoutError")


def test_a_retry_refused_for_a_newer_job_settles_the_failure_as_superseded(db):
    from jobs import failures, outcome, reaper
    from jobs.api.schemas import JobSummary

    dealer, failed = _failed_transiently(db, "busy")
    assert outcome.awaiting_worker(failed)  # its worker is about to retry it...
    newer, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "schedule")
    job = failures.after_failure(db, failed, outcome.TRANSIENT)  # ...but a newer job runs
    assert job.state == "failed" and job.error_kind == "superseded", job
    assert f"job {newer.id}" in job.error and "listing page timed out" in job.error
    assert not outcome.awaiting_worker(job)  # nobody waits for a retry that cannot come
    assert JobSummary.of(job, "busy", role="operator").state == "failed"
    db.execute("UPDATE jobs SET finished_at = now() - interval '1 hour' WHERE id = %s",
               (job.id,))
    assert reaper.reap(db)["requeued"] == []
    assert jobs_db.get(db, job.id).state == "failed"
    assert jobs_db.get(db, newer.id).state == "queued"  # untouched


def test_a_failure_its_dead_worker_left_behind_a_newer_job_is_superseded_by_the_redelivery(db):
    """The worker died after its attempt was settled failed, before it retried it, and the
    dealership got a newer job meanwhile (the scheduler's next slot, an operator's trigger):
    the dead worker's redelivered message (retry_left_failed) settled nothing, and no reaper
    looks at a failure behind a newer job, so it stayed failed with its transient kind for
    good, shown as settling and waited on by followers (found reading the code behind the
    soak's check for undecided failures: bench/bench_soak.py)."""
    from jobs import failures, outcome

    for slug, newer_ends in (("left-active", False), ("left-ended", True)):
        dealer, failed = _failed_transiently(db, slug)
        newer, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "schedule")
        if newer_ends:  # the newer job may be over by the time the redelivery comes
            assert queue_db.claim(db, newer.id, "w2", 60) is not None
            jobs_db.finish(db, newer.id, "succeeded", counters={})
        failures.retry_left_failed(db, failed)  # the dead worker's redelivered message
        job = jobs_db.get(db, failed.id)
        assert job.state == "failed" and job.error_kind == "superseded", (slug, job)
        assert f"job {newer.id}" in job.error and "listing page timed out" in job.error
        assert not outcome.awaiting_worker(job)
        assert jobs_db.get(db, newer.id).state == ("succeeded" if newer_ends else "queued")
