"""A run writes its batches only as the running attempt of its job (real PostgreSQL).

A worker that stalls past the stale limit (SIGSTOP, a starved machine) has its attempt taken
over by another worker; when it resumes, its run (a crawl child that had opened its spider,
a feed's ingest loop) goes on until its worker notices. Each batch checks, in the
transaction that writes it, that the job's row still names the run's attempt as running,
and holds the row so that a take-over waits for the batch to commit: a batch stored before
the take-over is written, none after it.
"""

from __future__ import annotations

import csv
import threading

import psycopg
import pytest

from crawler.config import reset_settings
from crawler.db import connect
from crawler.db import dealers as dealers_db
from crawler.db import job_queue as queue_db
from crawler.db import jobs as jobs_db
from crawler.errors import TakenOver
from crawler.models import Job
from ingest import feed_job
from pipelines import run as run_mod
from tests.jobs.conftest import wait_for
from tests.pipelines.test_run import CIVIC, RAV4, item


def claimed(db, kind: str = "crawl") -> Job:
    """A job whose attempt 1 worker w1 claimed."""
    dealer = dealers_db.create(db, slug="stalls", name="Stalls", website_url="https://d.test/")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, kind, "schedule")
    queue_db.set_message(db, job.id, "scheduled", "m1")
    job = queue_db.claim(db, job.id, "w1:1:T", 60, "m1")
    assert job is not None and job.attempts == 1
    return job


def take_over(conn: psycopg.Connection, job_id: int) -> Job | None:
    """What another worker does once the job's heartbeat looks stale (jobs/execution.py)."""
    with conn.transaction():
        conn.execute("UPDATE jobs SET heartbeat_at = now() - interval '1 minute'"
                     " WHERE id = %s", (job_id,))
        return queue_db.take_over(conn, job_id, "w2:2:T", 30, "m2")


def stored(db, job: Job) -> dict:
    """Everything a run writes for its job and dealer."""
    def rows(sql: str) -> list:
        return [tuple(r.values()) for r in db.execute(sql, {"d": job.dealership_id,
                                                            "j": job.id}).fetchall()]
    return {
        "vehicles": rows("SELECT vin, price, last_job_id FROM vehicles"
                         " WHERE dealership_id = %(d)s ORDER BY vin"),
        "events": rows("SELECT vin, kind FROM vehicle_events WHERE dealership_id = %(d)s"
                       " ORDER BY id"),
        "rejects": rows("SELECT source FROM rejects WHERE job_id = %(j)s ORDER BY id"),
        "seen": rows("SELECT vin FROM run_seen WHERE job_id = %(j)s ORDER BY vin"),
    }


def assert_untouched_successor(db, job_id: int) -> None:
    after = jobs_db.get(db, job_id)
    assert (after.state, after.attempts, after.worker) == ("running", 2, "w2:2:T"), \
        (after.state, after.error)
    assert after.counters == {} and after.error is None


def test_a_batch_after_its_attempt_was_taken_over_writes_nothing(db):
    job = claimed(db)
    # as a crawl child runs it: as the attempt its worker claimed
    run = run_mod.open_run(db, job.dealership_id, job.id, "crawl", attempt=1)
    run_mod.process(run, [item(CIVIC)])  # before the take-over: written
    before = stored(db, job)
    assert [v[0] for v in before["vehicles"]] == [CIVIC]
    assert before["events"] == [(CIVIC, "added")]

    assert take_over(db, job.id).attempts == 2
    with pytest.raises(TakenOver) as raised:
        run_mod.process(run, [item(CIVIC, price="$18,000"),
                              item(RAV4, make="Toyota", model="RAV4"),
                              item("", source="https://d.test/no-vin")])  # a reject
    assert str(raised.value) == f"job {job.id} attempt 1 was taken over by attempt 2"
    assert stored(db, job) == before  # no vehicle, event, reject or seen VIN
    assert_untouched_successor(db, job.id)


def test_a_feed_runs_overlapped_write_after_a_take_over_writes_nothing(db):
    job = claimed(db, "feed")
    run = run_mod.open_run(db, job.dealership_id, job.id, "feed", vins_only=True,
                           overlap_writes=True)
    try:
        run_mod.process(run, [item(CIVIC)])
        run_mod.wait_for_writes(run)
        before = stored(db, job)
        assert [v[0] for v in before["vehicles"]] == [CIVIC]
        assert take_over(db, job.id).attempts == 2
        run_mod.process(run, [item(RAV4, make="Toyota", model="RAV4")])  # on the writer
        with pytest.raises(TakenOver, match="attempt 1 was taken over by attempt 2"):
            run_mod.wait_for_writes(run)
    finally:
        run_mod.abandon(run)
    assert stored(db, job) == before
    assert_untouched_successor(db, job.id)


def test_a_run_taken_over_after_its_last_batch_records_nothing_as_seen_when_closed(db):
    """A row rejected for an unreadable VIN counts the one car at its page as seen when the
    run closes: not into the seen set of the attempt that runs the job now."""
    job = claimed(db)
    run = run_mod.open_run(db, job.dealership_id, job.id, "crawl", attempt=1)
    page = "https://d.test/civic"
    run_mod.process(run, [item(CIVIC, source=page, url=page)])
    run_mod.process(run, [item("", source=page, url=page)])  # its VIN unreadable now
    assert run.unreadable_urls == {page}
    before = stored(db, job)
    assert take_over(db, job.id).attempts == 2
    report = run_mod.close(run, complete=True)
    assert report["state"] == run_mod.SUPERSEDED and report["removed"] == 0
    assert stored(db, job) == before and before["seen"] == []
    assert_untouched_successor(db, job.id)


PAUSE_KEY = 4242


def test_a_take_over_waits_for_the_batch_being_written_and_then_fences_the_next(db):
    """A batch that checked its attempt before the take-over commits before it: the
    take-over's UPDATE waits on the job's row the batch holds."""
    job = claimed(db)
    run = run_mod.open_run(db, job.dealership_id, job.id, "crawl", attempt=1)
    # Batches pause inside their transaction, after their check, until the test lets go.
    db.execute(f"""
        CREATE FUNCTION pause_batch() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_advisory_xact_lock_shared({PAUSE_KEY}); RETURN NULL; END $$;
        CREATE TRIGGER pause_batch AFTER INSERT ON vehicle_events
           FOR EACH STATEMENT EXECUTE FUNCTION pause_batch()""")
    holder, other = connect(), connect()
    writing = None
    try:
        holder.execute("SELECT pg_advisory_lock(%s)", (PAUSE_KEY,))
        failed: list[BaseException] = []

        def write() -> None:
            try:
                run_mod.process(run, [item(CIVIC)])
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                failed.append(exc)

        writing = threading.Thread(target=write)
        writing.start()
        pid = db.info.backend_pid
        wait_for(lambda: other.execute(
            "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event = 'advisory'",
            (pid,)).fetchone(), what="the batch to pause inside its transaction")
        other.execute("SET lock_timeout = '300ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            take_over(other, job.id)  # the batch holds the job's row
        other.execute("RESET lock_timeout")
        holder.execute("SELECT pg_advisory_unlock(%s)", (PAUSE_KEY,))
        writing.join(timeout=60)
        assert not writing.is_alive() and not failed, failed
        assert [v[0] for v in stored(db, job)["vehicles"]] == [CIVIC]  # it committed

        assert take_over(other, job.id).attempts == 2
        before = stored(db, job)
        with pytest.raises(TakenOver):
            run_mod.process(run, [item(RAV4, make="Toyota", model="RAV4")])
        assert stored(db, job) == before
    finally:
        holder.close()  # lets a paused batch go, if the test failed before it did
        if writing is not None:
            writing.join(timeout=60)
        other.close()
        db.execute("DROP TRIGGER IF EXISTS pause_batch ON vehicle_events;"
                   " DROP FUNCTION IF EXISTS pause_batch()")


HEADER = ["VIN", "Year", "Make", "Model", "Price", "Description"]
VINS = [CIVIC, RAV4, "1FTFW1E8XNFA20418", "3GNAXKEG2RS112233", "3VW6T7AU3KM022910",
        "4S4BTACC1L3210987", "KM8JBCD16RU412377", "W1KAF4HB3MR023456", "1C4HJXDG2NW150034",
        "JN8BT3BB7NW300112", "5YJ3E1EA7KF317000", "WBA5R1C50KAJ98765"]


def test_a_feed_taken_over_midway_stores_no_later_batch_and_settles_nothing(
        db, tmp_path, monkeypatch):
    """A feed worker resumed after its attempt was taken over ingests on until its
    heartbeat thread notices: its later batches (and rejected rows) are refused, and the
    job is left to the attempt that runs it now, not failed."""
    job = claimed(db, "feed")
    path = tmp_path / "feed.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for n, vin in enumerate(VINS):
            w.writerow([vin, "2021", "Honda", "Civic", "$20,000", "Clean."])
            if n == len(VINS) - 2:  # a row in the last chunk that cannot be read
                w.writerow([VINS[0], "2021", "Honda", "Civic", "$20,000", "x" * 3000])
    monkeypatch.setenv("FORECOURT_FEED_BATCH_SIZE", "4")
    monkeypatch.setenv("FORECOURT_FEED_MAX_RECORD_CHARS", "2000")
    reset_settings()
    at_take_over: list[dict] = []

    def stall(counters: dict) -> None:  # the worker stalls after the first chunk
        if not at_take_over:
            with connect() as other:
                assert take_over(other, job.id).attempts == 2
                at_take_over.append(stored(other, job))

    try:
        result = feed_job.run_job(db, job.id, str(path), fmt="csv", on_batch=stall)
    finally:
        monkeypatch.undo()
        reset_settings()
    assert at_take_over and len(at_take_over[0]["vehicles"]) < len(VINS)
    assert stored(db, job) == at_take_over[0]
    assert (result.state, result.attempts) == ("running", 2)
    assert_untouched_successor(db, job.id)


def test_a_feed_attempt_taken_over_before_its_run_opens_writes_nothing(db, tmp_path):
    """A feed worker that stalls before its ingest opens its run (a long download, say)
    and resumes after another took its attempt over runs as the attempt it claimed, not as
    the one the job's row names by then: it writes nothing, not even its clean seen set."""
    from jobs import attempt as attempt_mod

    path = tmp_path / "feed.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows([vin, "2021", "Honda", "Civic", "$20,000", "Clean."] for vin in VINS)
    job = claimed(db, "feed")
    db.execute("UPDATE jobs SET params = jsonb_build_object('source', %s::text)"
               " WHERE id = %s", (str(path), job.id))
    job = jobs_db.get(db, job.id)
    db.execute("INSERT INTO run_seen (job_id, vin) VALUES (%s, %s)", (job.id, CIVIC))
    assert take_over(db, job.id).attempts == 2
    before = stored(db, job)  # attempt 2's seen set holds a VIN
    dealer = dealers_db.get_by_id(db, job.dealership_id)
    result = attempt_mod.feed(db, job, dealer, "w1:1:T")  # attempt 1's worker, resumed
    assert stored(db, job) == before
    assert (result.state, result.attempts) == ("running", 2)
    assert_untouched_successor(db, job.id)


def test_an_error_escaping_a_taken_over_attempt_does_not_fail_its_successor(db):
    """An exception that escaped an attempt (a database error after a TakenOver, say) was
    recorded by `fail_running` on whatever attempt was running: the successor's job ended
    failed under it. Now only the worker that runs the job settles it."""
    from jobs import failures

    job = claimed(db, "feed")
    taken = take_over(db, job.id)
    assert taken.worker == "w2:2:T"
    left = failures.settle_after_error(job.id, RuntimeError("connection lost"), "transient",
                                      "w1:1:T")
    assert (left.state, left.attempts, left.worker) == ("running", 2, "w2:2:T")
    assert left.errors == taken.errors  # attempt 1's abandonment only
    mine = failures.settle_after_error(job.id, RuntimeError("connection lost"), "transient",
                                      "w2:2:T")
    assert mine.state == "failed" and mine.error_kind == "transient:RuntimeError"
