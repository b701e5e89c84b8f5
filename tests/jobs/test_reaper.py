"""The reaper settles jobs whose worker stopped heartbeating (real PostgreSQL and Redis)."""

from __future__ import annotations

from crawler.db import dealers as dealers_db
from crawler.db import job_ends as ends_db
from crawler.db import job_queue as queue_db
from crawler.db import jobs as jobs_db


def _running(db, slug: str, attempts: int, stale: str):
    dealer = dealers_db.create(db, slug=slug, name=slug, website_url="http://127.0.0.1:9/")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
    db.execute("UPDATE jobs SET state = 'running', attempts = %s, worker = 'gone:1:T',"
               " started_at = now() - %s::interval, heartbeat_at = now() - %s::interval"
               " WHERE id = %s", (attempts, stale, stale, job.id))
    return job


def _sent_two_hours_ago(db, slug: str, name: str):
    """A scheduled crawl of a new dealer whose message was sent two hours ago and never
    taken (Redis lost it, or it waits behind a long backlog)."""
    from jobs import routing

    dealer = dealers_db.create(db, slug=slug, name=name, website_url="http://127.0.0.1:9/")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "schedule")
    routing.send(db, job)
    db.execute("UPDATE jobs SET created_at = now() - interval '2 hours',"
               " updated_at = now() - interval '2 hours',"
               " message_sent_at = now() - interval '2 hours' WHERE id = %s", (job.id,))
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
    # the same words as a redelivery that finds its worker dead: what an operator can act on
    assert dead.state == "dead" and dead.error == dead.errors[-1]["error"] == (
        "worker died during attempt 4 (stopped heartbeating: killed, out of memory, or cut "
        "off from the database?)")
    assert job.errors[0]["error"] == (
        "worker died during attempt 1 (stopped heartbeating: killed, out of memory, or cut "
        "off from the database?)")
    assert jobs_db.get(db, alive.id).state == "running"
    assert reaper.reap(db) == {"requeued": [], "dead": [], "resent": [], "cancelled": [],
                               "unrendered": [], "forgotten": [], "pruned": []}


def test_a_job_cancelled_while_its_worker_died_is_cancelled_not_queued_forever(db):
    from jobs import reaper, service

    job = _running(db, "cancelled-dead", attempts=1, stale="10 minutes")
    ends_db.request_cancel(db, job.id)  # the operator cancels; the worker is already gone
    done = reaper.reap(db)
    assert done["cancelled"] == [job.id] and done["requeued"] == []
    settled = jobs_db.get(db, job.id)
    assert settled.state == "cancelled" and settled.finished_at is not None
    # the dealership is free again: the next trigger makes a new job
    fresh, created = service.trigger(db, job.dealership_id, "crawl", "schedule")
    assert created and fresh.id != job.id


def test_a_queued_job_stuck_with_a_cancel_request_is_settled(db):
    from jobs import reaper

    job = _running(db, "stuck", attempts=1, stale="10 minutes")
    # what an older version left behind: requeued after the cancel, claimable by nobody
    db.execute("UPDATE jobs SET state = 'queued', cancel_requested_at = now(),"
               " created_at = now() - interval '2 hours', updated_at = now() - interval '2 hours',"
               " retry_at = NULL WHERE id = %s",
               (job.id,))
    assert reaper.reap(db)["cancelled"] == [job.id]
    assert jobs_db.get(db, job.id).state == "cancelled"


def test_a_failed_attempt_of_a_cancelled_job_is_not_retried(db):
    from jobs import failures, outcome

    job = _running(db, "cancel-then-fail", attempts=1, stale="1 second")
    ends_db.request_cancel(db, job.id)
    failed = queue_db.fail_running(db, job.id, "feed server reset the connection", "fetch")
    assert queue_db.requeue(db, job.id, 1) is None  # never back in line
    settled = failures.after_failure(db, failed, outcome.TRANSIENT)
    assert settled.state == "cancelled"


def test_a_job_waiting_in_a_long_backlog_is_resent_without_losing_its_place(db):
    from jobs import reaper, routing
    from jobs.broker import get_broker

    dealer = dealers_db.create(db, slug="backlog", name="Backlog",
                               website_url="http://127.0.0.1:9/")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
    message_id = routing.send(db, job)  # in line (no worker consumes this test's queues)
    db.execute("UPDATE jobs SET created_at = now() - interval '2 hours',"
               " updated_at = now() - interval '2 hours',"
               " message_sent_at = now() - interval '2 hours' WHERE id = %s", (job.id,))
    assert reaper.reap(db)["resent"] == [job.id]
    # the copy carries the same id: the first message, still in line, can claim the job
    assert jobs_db.get(db, job.id).message_id == message_id
    broker = get_broker()
    # both in line under the one id (other tests of this session may have left messages of
    # their own: the API's triggers, with no worker to take them)
    queued = [m for m in broker.client.hvals(f"{broker.namespace}:priority.msgs")
              if message_id.encode() in m]
    assert len(queued) == 2
    assert reaper.reap(db)["resent"] == []  # not again before another hour


def test_seen_sets_no_run_will_settle_are_dropped_and_live_ones_kept(db):
    from jobs import reaper

    buried = _running(db, "buried-seen", attempts=4, stale="10 minutes")
    live = _running(db, "live-seen", attempts=1, stale="1 second")
    db.execute("INSERT INTO run_seen (job_id, vin) VALUES (%s, 'A'), (%s, 'B'), (%s, 'C'),"
               " (987654321, 'D')", (buried.id, buried.id, live.id))
    done = reaper.reap(db)  # buries the first: its seen set is kept until it ended a while
    assert done["dead"] == [buried.id] and done["forgotten"] == [987654321]  # no such job
    db.execute("UPDATE jobs SET updated_at = now() - interval '10 minutes' WHERE id = %s",
               (buried.id,))
    assert reaper.reap(db)["forgotten"] == [buried.id]
    left = db.execute("SELECT job_id, vin FROM run_seen ORDER BY vin").fetchall()
    assert [(r["job_id"], r["vin"]) for r in left] == [(live.id, "C")]


def test_a_resent_waiting_job_keeps_its_record_and_etag(db):
    """The re-send under the same message id used to bump updated_at (the job's version and
    ETag) every hour, although nothing a client sees changed while the job waited."""
    from jobs import reaper
    from jobs.api.schemas import version_of

    job = _sent_two_hours_ago(db, "waiting", "Waiting")
    before = jobs_db.get(db, job.id)
    assert reaper.reap(db)["resent"] == [job.id]
    after = jobs_db.get(db, job.id)
    assert after.message_id == before.message_id
    assert after.updated_at == before.updated_at and version_of(after) == version_of(before)
    assert reaper.reap(db)["resent"] == []  # not again before another hour


def test_a_job_queued_but_never_sent_is_sent_within_a_minute_keeping_its_delay(db):
    """A worker killed between putting a failed attempt back in line (requeue) and sending
    its message left the job queued with no message anywhere, found only by the hourly
    re-send of lost messages (job_resend_after_s); the same for a crash between recording a
    new job and sending it. A job's message is now marked sent only once Redis has it, and a
    queued job whose message was not sent UNSENT_AFTER_S after its record changed is sent
    again, with what is left of its retry delay."""
    from jobs import reaper, routing

    dealer = dealers_db.create(db, slug="unsent", name="Unsent",
                               website_url="http://127.0.0.1:9/")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
    routing.send(db, job)  # attempt 1's message, sent
    sent = jobs_db.get(db, job.id)
    assert sent.message_sent_at is not None
    assert queue_db.claim(db, job.id, "w1", 60, sent.message_id) is not None
    queue_db.fail_running(db, job.id, "listing page timed out", "transient:TimeoutError")
    retry = queue_db.requeue(db, job.id, 3600)  # ... and the worker dies here, before send
    assert retry.message_sent_at is None  # the message it had was attempt 1's, consumed
    assert reaper.reap(db)["resent"] == []  # a worker's send takes a moment: not yet
    db.execute("UPDATE jobs SET updated_at = now() - make_interval(secs => %s) WHERE id = %s",
               (reaper.UNSENT_AFTER_S + 1, job.id))
    assert reaper.reap(db)["resent"] == [job.id]
    resent = jobs_db.get(db, job.id)
    assert resent.message_sent_at is not None and resent.message_id == sent.message_id
    from jobs.broker import get_broker

    broker = get_broker()  # delayed: the retry keeps its hour
    delayed = [m for m in broker.client.hvals(f"{broker.namespace}:priority.DQ.msgs")
               if sent.message_id.encode() in m]
    assert len(delayed) == 1
    assert reaper.reap(db)["resent"] == []  # sent now: not again


def _left_failed(db, slug: str, attempts: int = 1, ago: str = "10 minutes",
                 kind: str = "transient", queue: str | None = "priority"):
    """A job whose attempt was settled failed `ago` and whose worker then died before it
    retried, buried or cancelled it, its message lost with it (Redis restarted empty)."""
    job = _running(db, slug, attempts=attempts, stale="1 second")
    db.execute("UPDATE jobs SET queue = %s, message_id = 'lost-with-redis' WHERE id = %s",
               (queue, job.id))
    queue_db.fail_running(db, job.id, "listing page http://127.0.0.1:9/ failed: refused", kind)
    db.execute("UPDATE jobs SET finished_at = now() - %s::interval WHERE id = %s",
               (ago, job.id))
    return jobs_db.get(db, job.id)


def _messages_for(job_id: int) -> list[bytes]:
    """The messages waiting in this session's queues (delayed or not) that name the job."""
    from jobs.broker import get_broker

    broker = get_broker()
    found = []
    for queue in ("priority", "scheduled"):
        for name in (f"{queue}.msgs", f"{queue}.DQ.msgs"):
            found += [m for m in broker.client.hvals(f"{broker.namespace}:{name}")
                      if f'"args":[{job_id}]'.encode() in m.replace(b" ", b"")]
    return found


def test_a_failed_job_its_dead_worker_never_retried_is_retried_or_buried_by_the_reaper(db):
    """A worker that dies between its attempt's failure and the retry leaves the job failed;
    only its redelivered message acted on it. With that message lost too (Redis restarted
    empty), the job stayed failed for good. The reaper now does what the worker would have
    done, once the failure has waited `job_reap_after_s`."""
    from jobs import outcome, reaper

    retried = _left_failed(db, "orphan-retried")
    buried = _left_failed(db, "orphan-buried", attempts=4)  # the default maximum
    cancelled = _left_failed(db, "orphan-cancelled")
    db.execute("UPDATE jobs SET cancel_requested_at = now() WHERE id = %s", (cancelled.id,))
    recent = _left_failed(db, "orphan-recent", ago="1 second")  # its live worker acts soon
    permanent = _left_failed(db, "failed-for-good", kind="permanent")
    at_terminal = _left_failed(db, "at-terminal", queue=None)  # `forecourt crawl`: no worker
    # its worker may have found no live worker with Chromium and left it failed on purpose
    no_chromium = _left_failed(db, "no-chromium", kind=outcome.NO_CHROMIUM)
    superseded = _left_failed(db, "superseded")
    newer, _ = jobs_db.create_or_get_active(db, superseded.dealership_id, "crawl", "schedule")
    jobs_db.finish(db, newer.id, "succeeded", counters={})

    done = reaper.reap(db)
    assert done["requeued"] == [retried.id], done
    assert done["dead"] == [buried.id] and done["cancelled"] == [cancelled.id], done
    job = jobs_db.get(db, retried.id)
    assert job.state == "queued" and job.retry_at is not None and job.worker is None
    assert job.message_id not in (None, "lost-with-redis") and len(_messages_for(job.id)) == 1
    assert [e["kind"] for e in job.errors] == ["transient"]  # the failure, recorded once
    assert jobs_db.get(db, buried.id).state == "dead"
    assert jobs_db.get(db, cancelled.id).state == "cancelled"
    for left in (recent, permanent, at_terminal, no_chromium, superseded):
        assert jobs_db.get(db, left.id).state == "failed", left.dealership_id
    assert reaper.reap(db) == {"requeued": [], "dead": [], "resent": [], "cancelled": [],
                               "unrendered": [], "forgotten": [], "pruned": []}


def test_two_reapers_never_both_retry_a_job_left_failed(db):
    """The database decides which reaper acts on a job left failed: the one whose
    transaction holds its row (the other passes it by), and only on the failure it read
    (a reaper that read attempt 1's failure does nothing once attempt 2 has failed)."""
    from crawler.db import connect
    from jobs import failures, reaper

    job = _left_failed(db, "two-reapers")
    with connect() as other:
        with other.transaction():  # another reaper, deciding about this very job
            other.execute("SELECT id FROM jobs WHERE id = %s FOR UPDATE", (job.id,))
            assert reaper.reap(db)["requeued"] == []  # passed by, not waited on
        assert jobs_db.get(db, job.id).state == "failed"
    assert reaper.reap(db)["requeued"] == [job.id]
    assert reaper.reap(db)["requeued"] == []
    assert len(_messages_for(job.id)) == 1

    # A reaper that read the first failure acts only on that failure: the retry has failed
    # in turn (permanently), and the stale read must not requeue it.
    stale = jobs_db.get(db, job.id)
    stale = stale.model_copy(update={"state": "failed", "attempts": 1})
    again = queue_db.claim(db, job.id, "w:2:T", 60)
    assert again is not None and again.attempts == 2
    queue_db.fail_running(db, job.id, "listing page answered 404: not_found", "permanent")
    db.execute("UPDATE jobs SET finished_at = now() - interval '10 minutes' WHERE id = %s",
               (job.id,))
    assert failures.retry_left_failed(db, stale, 60) is None
    assert jobs_db.get(db, job.id).state == "failed"


def test_two_reapers_never_both_resend_a_lost_message(db):
    """Every worker runs a reaper. Two whose passes overlapped both read a lost job's
    message as lost, and both sent it again: the soak (bench/bench_soak.py) saw a message
    re-sent twice under its id within the same second, a copy in Redis for nothing. A
    reaper now re-sends a lost message holding its job's row, and only if it is still lost:
    another reaper passes it by meanwhile, and finds it sent afterwards."""
    from crawler.db import connect
    from jobs import reaper

    job = _sent_two_hours_ago(db, "lost-once", "Lost Once")
    lost = jobs_db.get(db, job.id)
    db.execute("SET lock_timeout = '10s'")  # (the reaper used to wait on the row, here)
    with connect() as other:
        with other.transaction():  # another reaper, re-sending this very message
            other.execute("SELECT id FROM jobs WHERE id = %s FOR UPDATE", (job.id,))
            assert reaper.reap(db)["resent"] == []  # passed by, not waited on
            other.execute("UPDATE jobs SET message_sent_at = now() WHERE id = %s", (job.id,))
    db.execute("RESET lock_timeout")
    assert len(_messages_for(job.id)) == 1  # only the other reaper's (not in Redis: a test)
    # a reaper that read it lost before the other sent it finds it sent, and passes it by
    assert reaper.resend_lost(db, lost) is None
    assert reaper.reap(db)["resent"] == []
    assert len(_messages_for(job.id)) == 1
