"""Messages across a rolling deploy: old and new workers share one Redis, so a worker may get
a message a newer release sent. The job record is the truth; a message names the job."""

from __future__ import annotations

import pytest

from crawler.config import PROJECT_ROOT
from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from tests.jobs.conftest import wait_final

pytestmark = pytest.mark.integration


def test_a_message_with_arguments_this_release_does_not_know_still_runs_its_job(
        db, shared_worker):
    # A newer release may send more than the job id (a hint it adds). This worker must run
    # the job by its id, not fail the message into Redis's dead letters while the job waits
    # `queued` for the reaper's re-send an hour later.
    from jobs import actors

    feed = PROJECT_ROOT / "fixtures" / "feeds" / "harbor-city-auto.csv"
    dealer = dealers_db.create(db, slug="newer", name="Newer", feed_url=str(feed))
    job, created = jobs_db.create_or_get_active(db, dealer.id, "feed", "api", {})
    assert created
    message = actors.run_feed_job.message_with_options(
        args=(job.id, "from-a-newer-release"), kwargs={"hint": {"shard": 3}})
    jobs_db.set_message(db, job.id, "priority", message.message_id)
    actors.run_feed_job.broker.enqueue(message)
    done = wait_final(db, job.id)
    assert done.state in ("succeeded", "partial") and done.attempts == 1, done.errors
    assert done.counters["upserted"] > 0
