"""Scheduled jobs under a backlog: first in, first out, and untouched while they wait."""

from __future__ import annotations

import time

import pytest

from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from tests.jobs.conftest import AT_ONCE, site_copy, slow_routes, wait_final, wait_for

pytestmark = pytest.mark.integration


def test_scheduled_jobs_start_in_queue_order_and_their_rows_hold_still_while_they_wait(
        db, site, start_workers, tmp_path):
    from jobs import service

    # 2 threads: one slot for scheduled work (one thread stays free for operator work)
    start_workers(1, threads=2)
    base = site(site_copy(tmp_path, slow_routes(0.4)))
    jobs = []
    for i in range(3):
        dealer = dealers_db.create(db, slug=f"backlog-{i}", name=f"Backlog {i}",
                                   website_url=base + "/inventory/", settings=AT_ONCE)
        job, created = service.trigger(db, dealer.id, "crawl", "schedule")
        assert created and job.queue == "scheduled"
        jobs.append(jobs_db.get(db, job.id))
    wait_for(lambda: jobs_db.get(db, jobs[0].id).state == "running", what="the first job")

    waiting = {j.id: (j.updated_at, j.message_id) for j in jobs[1:]}
    pending = {j.id for j in jobs}
    while pending:  # every look at a job still waiting finds the row as it was queued
        for job_id in sorted(pending):
            now = jobs_db.get(db, job_id)
            if now.state == "queued":
                assert (now.updated_at, now.message_id) == waiting.get(
                    job_id, (now.updated_at, now.message_id)), "a waiting job's row changed"
            elif now.state not in ("running",):
                pending.discard(job_id)
        time.sleep(0.05)

    done = [wait_final(db, j.id) for j in jobs]
    assert [j.state for j in done] == ["succeeded"] * 3
    assert all(j.attempts == 1 for j in done)
    # each ran under the message it was queued with: none was put back under a new id
    assert [j.message_id for j in done] == [j.message_id for j in jobs]
    started = sorted(done, key=lambda j: j.started_at)
    assert [j.id for j in started] == [j.id for j in jobs], "not first in, first out"
    for earlier, later in zip(started, started[1:], strict=False):
        assert later.started_at >= earlier.finished_at, "more scheduled jobs than slots ran"
