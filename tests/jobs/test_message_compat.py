"""Messages across a rolling deploy: old and new workers share one Redis, so a worker may get
a message a newer release sent. The job record is the truth; a message names the job."""

from __future__ import annotations

import pytest

from crawler.config import PROJECT_ROOT
from crawler.db import dealers as dealers_db
from crawler.db import job_queue as queue_db
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
    queue_db.set_message(db, job.id, "priority", message.message_id)
    actors.run_feed_job.broker.enqueue(message)
    done = wait_final(db, job.id)
    assert done.state in ("succeeded", "partial") and done.attempts == 1, done.errors
    assert done.counters["upserted"] > 0


def _stored(client, namespace: str, queue: str, message_id: str) -> list[dict]:
    """The stored copies of a message (by Dramatiq's id) in one of the broker's hashes."""
    import json

    found = []
    for raw in client.hvals(f"{namespace}:{queue}"):
        data = json.loads(raw)
        if data["message_id"] == message_id:
            found.append(data)
    return found


def test_a_message_for_an_actor_this_release_does_not_know_waits_for_a_release_that_does(
        db, shared_worker):
    # A newer release's new actor reaches this (older) worker during a rolling deploy. It
    # must not be failed into the dead letters (the job then waits `queued` for the reaper's
    # re-send an hour later) after a CRITICAL traceback: it goes back to the queue, delayed,
    # for a worker that knows it, with one clear line saying so.
    import time

    import dramatiq

    from jobs import actors

    broker = actors.get_broker()
    message = dramatiq.Message(queue_name="priority", actor_name="run_report_job_from_2027",
                               args=(424242,), kwargs={}, options={"forecourt_release": "9.9.9"})
    broker.enqueue(message)
    namespace = broker.namespace
    deadline = time.monotonic() + 30
    while "run_report_job_from_2027" not in shared_worker.log.read_text(errors="replace"):
        assert time.monotonic() < deadline, shared_worker.log.read_text()[-3000:]
        time.sleep(0.1)
    time.sleep(1)  # give a wrong path time to fail the message
    log = shared_worker.log.read_text(errors="replace")
    lines = [line for line in log.splitlines() if "run_report_job_from_2027" in line]
    assert len(lines) == 1, log[-3000:]
    assert "9.9.9" in lines[0] and "WARNING" in lines[0].upper(), lines
    assert "CRITICAL" not in log and "Traceback" not in log, log[-3000:]
    # not lost: not in the dead letters, but back in the delay queue, counted
    assert not _stored(broker.client, namespace, "priority.XQ.msgs", message.message_id)
    delayed = _stored(broker.client, namespace, "priority.DQ.msgs", message.message_id)
    assert len(delayed) == 1 and delayed[0]["actor_name"] == "run_report_job_from_2027"
    assert delayed[0]["options"]["forecourt_unknown_actor_tries"] == 1
    assert delayed[0]["options"]["forecourt_release"] == "9.9.9"
    # take it off the delay queue: put back every 30 s, it would bounce through the shared
    # worker for the rest of the session
    import json

    for key, raw in broker.client.hgetall(f"{namespace}:priority.DQ.msgs").items():
        if json.loads(raw)["message_id"] == message.message_id:
            broker.client.hdel(f"{namespace}:priority.DQ.msgs", key)
            broker.client.lrem(f"{namespace}:priority.DQ", 0, key)
    assert not _stored(broker.client, namespace, "priority.DQ.msgs", message.message_id)


def test_a_message_for_an_unknown_actor_put_back_too_often_goes_to_the_dead_letters(
        db, shared_worker):
    # no worker of the sending release came (a rolled-back deploy): it stops bouncing
    import time

    import dramatiq

    from jobs import actors

    broker = actors.get_broker()
    message = dramatiq.Message(
        queue_name="priority", actor_name="run_audit_job_from_2027", args=(7,), kwargs={},
        options={actors.UNKNOWN_ACTOR_TRIES: actors.UNKNOWN_ACTOR_MAX_TRIES})
    broker.enqueue(message)
    deadline = time.monotonic() + 30
    while not _stored(broker.client, broker.namespace, "priority.XQ.msgs", message.message_id):
        assert time.monotonic() < deadline, shared_worker.log.read_text()[-3000:]
        time.sleep(0.1)
    log = shared_worker.log.read_text(errors="replace")
    lines = [line for line in log.splitlines() if "run_audit_job_from_2027" in line]
    assert len(lines) == 1 and "ERROR" in lines[0] and "dead letters" in lines[0], lines
    assert not _stored(broker.client, broker.namespace, "priority.DQ.msgs", message.message_id)
    assert "Traceback" not in log
