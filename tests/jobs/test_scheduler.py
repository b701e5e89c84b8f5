"""Real `forecourt scheduler` processes: leader election, one enqueue per slot, failover."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta

import pytest

from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from crawler.db import schedules as schedules_db
from jobs.scheduler import next_slot
from tests.jobs.conftest import stop, wait_for

pytestmark = pytest.mark.integration


def _jobs(db, dealer_id):
    return jobs_db.list_for(db, dealer_id)


def test_two_schedulers_enqueue_a_due_dealer_once_and_fail_over(db, start_schedulers):
    now = schedules_db.server_now(db)
    due = dealers_db.create(db, slug="due", name="Due", website_url="http://127.0.0.1:9/",
                            schedule_interval_s=3600)
    paused = dealers_db.create(db, slug="paused", name="Paused",
                               website_url="http://127.0.0.1:9/", schedule_interval_s=60,
                               paused=True)
    later = dealers_db.create(db, slug="later", name="Later", website_url="http://127.0.0.1:9/",
                              schedule_cron="0 3 * * *", schedule_tz="America/Chicago")
    # Missed many slots (a day of hourly runs while no scheduler ran): runs once.
    schedules_db.set_next(db, due.id, now - timedelta(hours=24), None)
    schedules_db.set_next(db, paused.id, now - timedelta(hours=1), None)
    schedulers = start_schedulers(2)
    job = wait_for(lambda: _jobs(db, due.id), what="the scheduled job")[0]
    wait_for(lambda: schedules_db.state(db, later.id), what="the cron dealer's next run")
    time.sleep(1.5)  # several more ticks of both schedulers
    assert [j.id for j in _jobs(db, due.id)] == [job.id]
    job = jobs_db.get(db, job.id)
    assert job.trigger == "schedule" and job.queue == "scheduled"
    assert _jobs(db, paused.id) == [] and _jobs(db, later.id) == []
    state = schedules_db.state(db, due.id)  # the next of its own hourly slots (not the missed)
    assert now < state["next_run_at"] <= schedules_db.server_now(db) + timedelta(hours=1)
    assert state["next_run_at"] == next_slot(due, state["next_run_at"] - timedelta(hours=1))
    assert state["last_job_id"] == job.id
    cron_next = schedules_db.state(db, later.id)["next_run_at"]
    from zoneinfo import ZoneInfo

    local = cron_next.astimezone(ZoneInfo("America/Chicago"))
    assert (local.hour, local.minute) == (3, 0)
    leaders = [s for s in schedulers if "this scheduler leads" in s.log.read_text()]
    assert len(leaders) == 1

    # The leader dies; the standby takes the lock and runs the next due slot.
    stop(leaders[0], signal.SIGKILL)
    standby = next(s for s in schedulers if s is not leaders[0])
    db.execute("UPDATE jobs SET state = 'succeeded', finished_at = now() WHERE id = %s",
               (job.id,))
    db.execute("UPDATE schedule_state SET next_run_at = now() - interval '1 minute'"
               " WHERE dealership_id = %s", (due.id,))
    wait_for(lambda: len(_jobs(db, due.id)) == 2, timeout=20, what="the standby's job")
    assert "this scheduler leads" in standby.log.read_text()


def test_a_cron_line_that_never_fires_is_refused_and_one_stored_never_stops_the_others(db):
    from crawler.errors import InvalidInput
    from jobs import scheduler

    with pytest.raises(InvalidInput, match="never fires"):
        scheduler.validate("0 0 30 2 *", "UTC")  # February 30th
    # one stored before it was checked (or by hand) beside a dealer that is due
    broken = dealers_db.create(db, slug="feb30", name="Feb 30",
                               website_url="http://127.0.0.1:9/", schedule_cron="0 6 * * *")
    db.execute("UPDATE dealerships SET schedule_cron = '0 0 30 2 *' WHERE id = %s",
               (broken.id,))
    due = dealers_db.create(db, slug="due-too", name="Due", website_url="http://127.0.0.1:9/",
                            schedule_interval_s=3600)
    now = schedules_db.server_now(db)
    schedules_db.set_next(db, due.id, now - timedelta(minutes=1), None)
    created = scheduler.tick(db)  # does not raise
    assert [j.id for j in _jobs(db, due.id)] == created and len(created) == 1
    skipped = schedules_db.state(db, broken.id)["next_run_at"]
    assert skipped >= now + timedelta(minutes=59)  # looked at again in an hour
    assert scheduler.tick(db) == []


def test_a_success_after_failing_scheduled_runs_ends_the_backoff(db):
    """After five failures in a row the scheduler held a 15-minute schedule's next run back
    40 minutes; an operator's run that then succeeded left it there (up to six hours)."""
    from jobs import scheduler
    from tests.api.conftest import add_job

    dealer = dealers_db.create(db, slug="flaky", name="Flaky", website_url="http://127.0.0.1:9/",
                               schedule_interval_s=900)
    for _ in range(5):
        add_job(db, dealer.id, state="dead", finished_at="2026-01-01T00:00:00Z")
    now = schedules_db.server_now(db)
    schedules_db.set_next(db, dealer.id, now - timedelta(minutes=1), None)
    [failing] = scheduler.tick(db)
    held = schedules_db.state(db, dealer.id)["next_run_at"]
    assert held >= now + timedelta(seconds=scheduler.backoff_s(5))  # 40 min, not 15
    db.execute("UPDATE jobs SET state = 'dead', finished_at = now() WHERE id = %s", (failing,))
    assert scheduler.tick(db) == [] and schedules_db.state(db, dealer.id)["next_run_at"] == held

    add_job(db, dealer.id, state="succeeded", trigger="operator",
            finished_at=schedules_db.server_now(db))
    assert scheduler.tick(db) == []
    back = schedules_db.state(db, dealer.id)["next_run_at"]  # its next 15-minute slot
    assert now < back <= schedules_db.server_now(db) + timedelta(seconds=900), (back, held)
    assert back == next_slot(dealer, back - timedelta(seconds=900))
    assert scheduler.tick(db) == [] and schedules_db.state(db, dealer.id)["next_run_at"] == back


def _slots(cron: str, tz: str, start, end, jitter_s: float = 5.0):
    """Every slot the scheduler would run between start and end (each next run computed just
    after the one before, as a tick does), in the dealer's local time."""
    from zoneinfo import ZoneInfo

    from crawler.models import Dealership
    from jobs.scheduler import next_slot

    dealer = Dealership(id=1, slug="d", name="D", schedule_cron=cron, schedule_tz=tz)
    out, t = [], start
    while (t := next_slot(dealer, t)) < end:
        out.append(t.astimezone(ZoneInfo(tz)))
        t += timedelta(seconds=jitter_s)
    return out


def test_a_fixed_time_cron_line_runs_once_a_night_across_both_dst_changes():
    """'30 1 * * *' in Chicago ran twice on the fall-back night (01:30 CDT, then 01:30 CST an
    hour later: two full crawls); the spring-forward night's 02:30 does not exist and runs
    once, just after the gap. Lines with '*' in the hour or minute run by the clock, as cron's
    do: an hourly line runs in both 01:00 hours (25 runs that day)."""
    from datetime import UTC, datetime

    utc = UTC
    fall = _slots("30 1 * * *", "America/Chicago", datetime(2026, 10, 30, 12, tzinfo=utc),
                  datetime(2026, 11, 3, 12, tzinfo=utc))
    assert [(s.day, s.hour, s.minute) for s in fall] == [
        (31, 1, 30), (1, 1, 30), (2, 1, 30), (3, 1, 30)], fall
    spring = _slots("30 2 * * *", "America/Chicago", datetime(2026, 3, 6, 12, tzinfo=utc),
                    datetime(2026, 3, 10, 12, tzinfo=utc))
    assert [s.day for s in spring] == [7, 8, 9, 10], spring
    assert (spring[1].hour, spring[1].minute) == (3, 0)  # 02:30 skipped by the clock: 03:00
    hourly = _slots("0 * * * *", "America/Chicago", datetime(2026, 11, 1, 5, 0, 30, tzinfo=utc),
                    datetime(2026, 11, 2, 6, 0, 30, tzinfo=utc))
    assert len(hourly) == 25 and [s.hour for s in hourly[:3]] == [1, 1, 2], hourly
    twice = _slots("15 1,13 * * *", "Europe/London", datetime(2026, 10, 24, 13, tzinfo=utc),
                   datetime(2026, 10, 26, 12, tzinfo=utc))
    assert [(s.day, s.hour) for s in twice] == [(25, 1), (25, 13), (26, 1)], twice


def test_interval_dealers_keep_their_spread_after_the_scheduler_was_down(db):
    """Three hourly dealers ran 20 minutes apart; after six hours with no scheduler each
    missed slot ran once, but every next run was set to now + 1 h: all three (all 200, in
    production) ran together every hour from then on. Each keeps its own time within the
    hour: its phase, which comes from its id (test_schedule_spread runs 200 over weeks)."""
    from jobs import scheduler

    now = schedules_db.server_now(db)
    dealers = []
    for i in range(3):
        d = dealers_db.create(db, slug=f"spread-{i}", name=f"Spread {i}",
                              website_url="http://127.0.0.1:9/", schedule_interval_s=3600)
        schedules_db.set_next(db, d.id, now - timedelta(hours=6) + timedelta(minutes=20 * i),
                              None)
        dealers.append(d)
    created = scheduler.tick(db)
    assert sorted(created) == sorted(j.id for d in dealers for j in _jobs(db, d.id))
    assert len(created) == 3  # each missed slot runs once
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    phases = set()
    for d in dealers:
        upcoming = schedules_db.state(db, d.id)["next_run_at"]
        assert now < upcoming <= schedules_db.server_now(db) + timedelta(hours=1)
        phases.add((upcoming - epoch) % timedelta(hours=1))
        assert phases >= {scheduler.phase(d.id, timedelta(hours=1))}
    assert len(phases) == 3


def _forecourt(*args: str):
    import subprocess
    import sys
    from pathlib import Path

    return subprocess.run([str(Path(sys.executable).parent / "forecourt"), *args],
                          capture_output=True, text=True, timeout=120)


def test_pausing_a_dealer_cancels_its_scheduled_job_still_waiting_to_start(db):
    """`schedule pause` only stopped new slots: a scheduled crawl already waiting behind the
    backlog (say an hour) still crawled the dealer the operator had just paused. An operator's
    own queued job still runs; a running one is named with how to stop it."""
    from jobs import service

    dealer = dealers_db.create(db, slug="to-pause", name="To pause",
                               website_url="http://127.0.0.1:9/", schedule_interval_s=3600)
    waiting, created = service.trigger(db, dealer.id, "crawl", "schedule")  # no worker runs
    assert created and waiting.state == "queued"
    result = _forecourt("schedule", "pause", "to-pause")
    assert result.returncode == 0, result.stderr
    assert jobs_db.get(db, waiting.id).state == "cancelled"
    assert f"cancelled its scheduled job {waiting.id}" in " ".join(result.stdout.split())
    assert dealers_db.get(db, "to-pause").paused

    operator, _ = service.trigger(db, dealer.id, "crawl", "operator")
    assert "cancelled" not in _forecourt("schedule", "pause", "to-pause").stdout
    assert jobs_db.get(db, operator.id).state == "queued"  # operator triggers still run
    db.execute("UPDATE jobs SET state = 'running', started_at = now() WHERE id = %s",
               (operator.id,))
    out = " ".join(_forecourt("schedule", "pause", "to-pause").stdout.split())
    assert f"job {operator.id} is running" in out and f"forecourt jobs cancel {operator.id}" in out


def test_resuming_after_a_long_pause_runs_the_next_slot_not_the_missed_ones(db):
    """A dealer paused for a month (its next run a month old) and resumed: no burst of the
    slots it missed, not even one run at once; its next run is its schedule's next slot."""
    from jobs import scheduler

    hourly = dealers_db.create(db, slug="back-hourly", name="Back", paused=True,
                               website_url="http://127.0.0.1:9/", schedule_interval_s=3600)
    daily = dealers_db.create(db, slug="back-daily", name="Back", paused=True,
                              website_url="http://127.0.0.1:9/", schedule_cron="0 6 * * *",
                              schedule_tz="America/Chicago")
    for d in (hourly, daily):
        schedules_db.set_next(db, d.id, schedules_db.server_now(db) - timedelta(days=30), None)
        assert _forecourt("schedule", "resume", d.slug).returncode == 0
    now = schedules_db.server_now(db)
    assert scheduler.tick(db) == [] and scheduler.tick(db) == []
    assert _jobs(db, hourly.id) == [] and _jobs(db, daily.id) == []
    jitter = timedelta(seconds=scheduler.get_settings().schedule_jitter_s)
    for d in (hourly, daily):
        upcoming = schedules_db.state(db, d.id)["next_run_at"]
        assert next_slot(d, now) <= upcoming <= next_slot(d, now) + jitter, (d.slug, upcoming)


def test_the_scheduler_outlives_a_redis_outage_while_its_reaper_has_a_job_to_resend(
        db, job_env, tmp_path):
    """With Redis down and a queued job whose message looked lost, the leader's reaper pass
    raised redis's ConnectionError (not an OSError): the scheduler died with a traceback,
    then the standby that took over did the same, and nothing was scheduled until someone
    restarted them. It now logs the failed pass and keeps ticking."""
    from tests.api.conftest import add_job
    from tests.faults.servers import Redis
    from tests.jobs.conftest import _spawn

    redis_server = Redis(tmp_path / "redis")  # a throwaway Redis, up while the scheduler starts
    redis_server.start()
    proc = _spawn(["scheduler"], {**job_env, "REDIS_URL": redis_server.url},
                  tmp_path / "scheduler.log")
    try:
        wait_for(lambda: "this scheduler leads" in proc.log.read_text() or proc.poll(),
                 what="the scheduler to lead")
        redis_server.kill()  # then Redis goes down, with a job whose message looks lost
        lost = dealers_db.create(db, slug="lost", name="Lost", website_url="http://127.0.0.1:9/")
        add_job(db, lost.id, state="queued", created_at="2026-01-01T00:00:00Z",
                updated_at="2026-01-01T00:00:00Z")
        time.sleep(1.0)  # several ticks and reaper passes
        assert proc.poll() is None, proc.log.read_text()[-2000:]
        # and it keeps the lead: the reaper's failed re-send is logged, not a lost tick that
        # closed the leader's connection (dropping the lock) every pass
        assert proc.log.read_text().count("this scheduler leads") == 1, \
            proc.log.read_text()[-2000:]
        # and it still schedules: a dealer that falls due now waits, unrecorded (each tick
        # recorded a job failed 'could not enqueue', a row per due dealer a minute), and is
        # queued by the first tick once Redis is back
        due = dealers_db.create(db, slug="due-later", name="Due", website_url="http://127.0.0.1:9/",
                                schedule_interval_s=3600)

        def make_due() -> bool:
            # compare-and-set against what is there: the running scheduler may have given the
            # new schedule its first slot (an hour off) since the dealer was added, and a set
            # expecting none was then refused, leaving the dealer never due (seen under load)
            current = db.execute("SELECT next_run_at FROM schedule_state WHERE"
                                 " dealership_id = %s", (due.id,)).fetchone()
            return schedules_db.set_next(
                db, due.id, schedules_db.server_now(db) - timedelta(minutes=1),
                current["next_run_at"] if current else None)

        wait_for(make_due, what="the dealer made due")
        wait_for(lambda: "the job queue is unavailable" in proc.log.read_text(),
                 what="the scheduler to see Redis down")
        time.sleep(0.5)  # more ticks while Redis is down
        assert _jobs(db, due.id) == []
        redis_server.start()
        [job] = wait_for(lambda: _jobs(db, due.id), what="the due dealer's job once Redis is back")
        assert job.state == "queued" and job.trigger == "schedule", job
        assert proc.log.read_text().count("the job queue is unavailable") == 1
        assert "Traceback" not in proc.log.read_text()
    finally:
        stop(proc, signal.SIGKILL)
        redis_server.kill()


def test_a_slot_that_could_not_be_queued_is_tried_again_soon_not_at_the_next_slot(
        db, monkeypatch):
    """Redis away for a minute at 02:00 cost a daily dealer its run: the slot was claimed,
    the enqueue failed, and the next run was the next day's."""
    import redis

    from jobs import routing, scheduler

    dealer = dealers_db.create(db, slug="daily", name="Daily", website_url="http://127.0.0.1:9/",
                               schedule_interval_s=86_400)
    now = schedules_db.server_now(db)
    slot = next_slot(dealer, now - timedelta(days=1))  # its latest daily slot
    schedules_db.set_next(db, dealer.id, slot, None)

    def redis_down(*args, **kwargs):
        raise redis.exceptions.ConnectionError("Error 111 connecting. Connection refused.")

    monkeypatch.setattr(routing, "send", redis_down)
    assert scheduler.tick(db) == []
    [failed] = _jobs(db, dealer.id)
    assert failed.state == "failed" and "could not enqueue" in failed.error
    retry = schedules_db.state(db, dealer.id)["next_run_at"]
    jitter = timedelta(seconds=scheduler.get_settings().schedule_jitter_s)
    assert retry <= schedules_db.server_now(db) + timedelta(minutes=1) + jitter, retry - now
    monkeypatch.undo()  # Redis is back
    schedules_db.set_next(db, dealer.id, now - timedelta(seconds=1), retry)  # a minute on
    [job_id] = scheduler.tick(db)
    assert jobs_db.get(db, job_id).state == "queued"
    after = schedules_db.state(db, dealer.id)["next_run_at"]  # its next daily slot
    assert after >= slot + timedelta(days=1) and (after - slot) % timedelta(days=1) == \
        timedelta(0), after - slot


def test_a_redis_outage_does_not_hold_back_the_schedule_once_redis_is_back(db, monkeypatch):
    """Each retry of a slot Redis refused left a job failed with 'could not enqueue', and the
    failure backoff counted those as the dealer's failures: after an outage of a few retries
    an hourly dealer's next run was held back hours (up to schedule_backoff_max_s), every
    dealer at once, though none of them had failed. They never ran: they are not failures."""
    import redis

    from jobs import routing, scheduler

    dealer = dealers_db.create(db, slug="hourly", name="Hourly",
                               website_url="http://127.0.0.1:9/", schedule_interval_s=3600)
    now = schedules_db.server_now(db)
    schedules_db.set_next(db, dealer.id, now - timedelta(seconds=10), None)
    jitter = timedelta(seconds=scheduler.get_settings().schedule_jitter_s)

    def redis_down(*args, **kwargs):
        raise redis.exceptions.ConnectionError("Error 111 connecting. Connection refused.")

    monkeypatch.setattr(routing, "send", redis_down)
    for _ in range(6):  # six retries while Redis is away
        assert scheduler.tick(db) == []
        retry = schedules_db.state(db, dealer.id)["next_run_at"]
        # tried again in about a minute each time: the dealer itself never failed
        assert retry <= schedules_db.server_now(db) + timedelta(
            seconds=scheduler.ENQUEUE_RETRY_S) + jitter, retry - now
        schedules_db.set_next(db, dealer.id, schedules_db.server_now(db)
                              - timedelta(seconds=1), retry)  # the retry is due
    assert len([j for j in _jobs(db, dealer.id) if "could not enqueue" in (j.error or "")]) == 6
    monkeypatch.undo()  # Redis is back
    [job_id] = scheduler.tick(db)
    assert jobs_db.get(db, job_id).state == "queued"
    after = schedules_db.state(db, dealer.id)["next_run_at"]
    assert after <= schedules_db.server_now(db) + timedelta(seconds=3600) + jitter, after - now


def test_a_slot_whose_dealer_already_has_a_job_running_is_skipped_and_says_so(db, caplog):
    """One active job per dealer: a run longer than its interval makes the scheduler skip
    the slot. It did so without a word, so an operator could not tell a skipped slot from
    a scheduler that was not running."""
    import logging

    from jobs import scheduler
    from tests.api.conftest import add_job

    dealer = dealers_db.create(db, slug="slow", name="Slow", website_url="http://127.0.0.1:9/",
                               schedule_interval_s=900)
    running = add_job(db, dealer.id, state="running", trigger="operator")
    schedules_db.set_next(db, dealer.id, schedules_db.server_now(db) - timedelta(minutes=1),
                          None)
    with caplog.at_level(logging.INFO, logger="forecourt.scheduler"):
        assert scheduler.tick(db) == []
    [line] = [r.getMessage() for r in caplog.records if "slot skipped" in r.getMessage()]
    assert f"job {running}" in line and "running" in line and "slow" in line
