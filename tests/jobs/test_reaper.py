"""The reaper settles jobs whose worker stopped heartbeating (real PostgreSQL and Redis)."""

from __future__ import annotations

from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db


def _running(db, slug: str, attempts: int, stale: str):
    dealer = dealers_db.create(db, slug=slug, name=slug, website_url="http://127.0.0.1:9/")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
    db.execute("UPDATE jobs SET state = 'running', attempts = %s, worker = 'gone:1:T',"
               " started_at = now() - %s::interval, heartbeat_at = now() - %s::interval"
               " WHERE id = %s", (attempts, stale, stale, job.id))
    return job


def test_reaper_retries_or_buries_abandoned_jobs_and_leaves_live_ones(db):
    from jobs import reaper

    retried = _running(db, "retried", attempts=1, stale="10 minutes")
    buried = _running(db, "buried", attempts=4, stale="10 minutes")  # the default maximum
    alive = _running(db, "alive", attempts=1, stale="1 second")
    done = reaper.reap(db)
    assert done["requeued"] == [retried.id] and done["dead"] == [buried.id]
    job = jobs_db.get(db, retried.id)
    assert job.state == "queued" and job.retry_at is not None and job.worker is None
    assert job.message_id and job.queue == "priority"
    assert [e["kind"] for e in job.errors] == ["abandoned"]
    dead = jobs_db.get(db, buried.id)
    assert dead.state == "dead" and dead.errors[-1]["error"] == "worker stopped heartbeating"
    assert jobs_db.get(db, alive.id).state == "running"
    assert reaper.reap(db) == {"requeued": [], "dead": [], "resent": []}
