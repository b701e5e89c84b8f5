"""A pause (or an offboarding) landing in the middle of a scheduler tick: the real tick, the
real pause and removal, on their own connections, interleaved at fixed points."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from crawler.db import connect
from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from crawler.db import schedules as schedules_db
from tests.jobs.conftest import wait_for

pytestmark = pytest.mark.integration


def _due_dealer(db, slug: str):
    dealer = dealers_db.create(db, slug=slug, name=slug.title(),
                               website_url="http://127.0.0.1:9/", schedule_interval_s=3600)
    schedules_db.set_next(db, dealer.id, schedules_db.server_now(db) - timedelta(minutes=1),
                          None)
    return dealer


def _after_reading_due_dealers(monkeypatch, then):
    """Run `then()` once, right after the tick has read the due dealers."""
    real = schedules_db.scheduled

    def read_then(conn):
        due = real(conn)
        monkeypatch.setattr(schedules_db, "scheduled", real)
        then()
        return due

    monkeypatch.setattr(schedules_db, "scheduled", read_then)


def test_a_pause_committed_after_the_tick_read_the_due_dealers_wins(db, monkeypatch):
    """The tick read the dealer as due; `schedule pause` committed (finding no job to
    cancel); the tick then claimed the slot and queued a scheduled crawl of the dealer the
    operator had just paused."""
    from jobs import scheduler, service

    dealer = _due_dealer(db, "paused-mid-tick")

    def pause():
        with connect() as operator:
            assert service.pause(operator, dealer.id) == (None, None)  # nothing to cancel yet

    _after_reading_due_dealers(monkeypatch, pause)
    assert scheduler.tick(db) == []
    assert jobs_db.list_for(db, dealer.id) == []


def test_an_offboarding_that_began_after_the_tick_read_the_due_dealers_is_not_refused(
        db, monkeypatch):
    """`dealers remove` pauses the dealer (having found no active job) and then deletes its
    rows in batches; a tick that had read the dealer as due queued a crawl of it meanwhile,
    and the removal, near its end, was refused for that job, leaving the dealer half
    deleted with a crawl of it running."""
    from crawler import offboard
    from crawler.db import removal as removal_db
    from jobs import scheduler

    dealer = _due_dealer(db, "removed-mid-tick")

    def begin_removal():
        with connect() as operator:
            assert removal_db.lock_and_retire(operator, dealer.id) == (None, 0)

    _after_reading_due_dealers(monkeypatch, begin_removal)
    assert scheduler.tick(db) == []
    offboard.remove(db, dealer)  # the rest of the removal: nothing in its way
    assert db.execute("SELECT count(*) AS n FROM dealerships WHERE id = %s",
                      (dealer.id,)).fetchone()["n"] == 0


def test_a_pause_landing_while_the_tick_records_the_job_cancels_it(db, monkeypatch):
    """A pause that commits after the tick has decided to run the slot, while the job is
    being recorded, must find that job and cancel it (the path for a job queued before the
    pause): it waits for the tick's record instead of passing it by."""
    from jobs import scheduler, service

    dealer = _due_dealer(db, "paused-while-recording")
    real = jobs_db.create_or_get_active
    pauser = connect()
    outcome: dict = {}

    def pause():
        outcome["pause"] = service.pause(pauser, dealer.id)

    thread = threading.Thread(target=pause)

    def pause_lands_then_record(conn, *args, **kwargs):
        monkeypatch.setattr(jobs_db, "create_or_get_active", real)
        thread.start()
        with connect() as watcher:  # the pause has committed, or waits on the tick's lock
            wait_for(lambda: not thread.is_alive() or watcher.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                (pauser.info.backend_pid,)).fetchone()["wait_event_type"] == "Lock",
                what="the pause to commit or wait")
        return real(conn, *args, **kwargs)

    monkeypatch.setattr(jobs_db, "create_or_get_active", pause_lands_then_record)
    try:
        [job_id] = scheduler.tick(db)
        thread.join(timeout=30)
        assert not thread.is_alive()
    finally:
        pauser.close()
    assert jobs_db.get(db, job_id).state == "cancelled"
    assert outcome["pause"][0].id == job_id
    assert dealers_db.get(db, dealer.slug).paused


def test_a_tick_between_a_resume_and_its_fresh_start_does_not_run_the_stale_slot(
        db, monkeypatch):
    """`schedule resume` un-pauses the dealer, then clears its schedule state so it starts
    from its next slot. A tick reading between the two saw the dealer unpaused with its
    old, overdue slot from before the pause, and ran that slot at once."""
    from jobs import scheduler, service

    dealer = _due_dealer(db, "resumed-mid-tick")
    service.pause(db, dealer.id)
    real = schedules_db.clear
    ticked: dict = {}

    def tick_then_clear(conn, dealership_id):
        monkeypatch.setattr(schedules_db, "clear", real)
        ticked["jobs"] = scheduler.tick(db)  # another connection, between the two writes
        real(conn, dealership_id)

    monkeypatch.setattr(schedules_db, "clear", tick_then_clear)
    with connect() as operator:
        service.resume(operator, dealer.id)
    assert ticked["jobs"] == []
    assert jobs_db.list_for(db, dealer.id) == []


def test_a_job_cancelled_before_its_message_could_be_sent_stays_cancelled(db, monkeypatch):
    """The tick records a slot's job, then sends its message after the commit; a pause in
    between cancels the queued job. When Redis then refuses the message, the job is marked
    failed 'could not enqueue': it overwrote the cancel (and the operator's reason)."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from crawler.errors import Transient
    from jobs import routing, service

    dealer = _due_dealer(db, "cancelled-before-send")
    job, created = service.record(db, dealer.id, "crawl", "schedule")
    assert created
    assert service.pause(db, dealer.id)[0].id == job.id  # cancelled while still unsent

    def refused(conn, job, *args, **kwargs):  # Redis going away at that moment
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(routing, "send", refused)
    with pytest.raises(Transient):
        service.enqueue(db, job)
    after = jobs_db.get(db, job.id)
    assert (after.state, after.error_kind) == ("cancelled", "cancelled")
