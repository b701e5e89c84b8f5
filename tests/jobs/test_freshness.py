"""When a scheduled dealer's inventory counts as stale (jobs/freshness.py over the query in
crawler/db/dealers.py: what /metrics and `forecourt dealers list` both report), on the real
database. Times are set relative to the database's clock; no test waits for one to pass.

Both the grace and the scheduler's jitter are set here, so the deadlines are exact."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest

from crawler.config import reset_settings
from crawler.db import dealers as dealers_db
from jobs import freshness
from tests.api.conftest import add_job
from tests.test_cli import run

GRACE_S = 600
JITTER_S = 30


@pytest.fixture(autouse=True)
def allowance(monkeypatch):
    monkeypatch.setenv("FORECOURT_STALE_GRACE_S", str(GRACE_S))
    monkeypatch.setenv("FORECOURT_SCHEDULE_JITTER_S", str(JITTER_S))
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


def _now(db):
    return db.execute("SELECT now() AS t").fetchone()["t"]


def _judged(db) -> dict[str, dict]:
    return {r["slug"]: r for r in freshness.judge(dealers_db.freshness(db))}


def _succeeded(db, dealer_id: int, finished, took_min: float) -> int:
    """A successful scheduled run queued `took_min` minutes before it finished."""
    return add_job(db, dealer_id, state="succeeded", verdict="healthy",
                   created_at=finished - timedelta(minutes=took_min), finished_at=finished)


def _history(db, dealer_id: int, last_finished, period: timedelta) -> None:
    """Five successes one period apart, the newest finished at `last_finished`; queued to
    finished they took 30 (a backlog once), 4, 6, 5 and 5 minutes: typically 5."""
    for i, took in enumerate((30, 4, 6, 5, 5)):
        _succeeded(db, dealer_id, last_finished - (4 - i) * period, took)


def test_an_interval_dealer_whose_run_takes_its_usual_time_is_not_stale_while_it_runs(db):
    """Deadline was the last success plus exactly two periods: a 30-minute dealer whose run
    failed once was stale for the minutes its next run takes to queue and finish, every
    time; on-call's alert hid that flapping behind `for: 30m`."""
    now = _now(db)
    period = timedelta(minutes=30)
    steady = dealers_db.create(db, slug="steady", name="Steady", website_url="https://s.test/",
                               schedule_interval_s=1800)
    lapsed = dealers_db.create(db, slug="lapsed", name="Lapsed", website_url="https://l.test/",
                               schedule_interval_s=1800)
    _history(db, steady.id, now - timedelta(minutes=62), period)
    # two periods, the usual 5 minutes and the grace: 75 minutes (an interval's slots are
    # fixed times, never jittered: jobs/scheduler.py)
    _history(db, lapsed.id, now - timedelta(minutes=77), period)
    add_job(db, steady.id, state="failed", error="boom", error_kind="failed",
            finished_at=now - timedelta(minutes=31))

    judged = _judged(db)
    assert not judged["steady"]["stale"], judged["steady"]
    assert judged["steady"]["deadline"] == judged["steady"]["last_success_at"] + 2 * period \
        + timedelta(seconds=5 * 60 + GRACE_S)
    assert judged["lapsed"]["stale"], "the allowance is bounded"
    assert 110 <= judged["lapsed"]["overdue_s"] < 130
    summary = freshness.summary(list(judged.values()))
    assert summary["stale"]["succeeded"] == 1 and sum(summary["stale"].values()) == 1


def test_a_cron_dealer_whose_run_lands_after_its_slot_is_not_stale_while_it_runs(db):
    """A cron dealer's deadline was its second slot itself: after one failed run, the next
    slot's run (started late by its jitter, then queued and running) could never finish
    before it, so the dealer was stale for that run's length every time."""
    slot = db.execute("SELECT date_trunc('minute', now()) - interval '1 minute' AS t"
                      ).fetchone()["t"].astimezone(UTC)  # a minute or two ago: running
    daily = dealers_db.create(db, slug="daily", name="Daily", website_url="https://d.test/",
                              schedule_cron=f"{slot.minute} {slot.hour} * * *")
    # the day before yesterday's run took 3 minutes; yesterday's failed
    _succeeded(db, daily.id, slot - timedelta(days=2, minutes=-3), took_min=3)
    add_job(db, daily.id, state="failed", error="boom", error_kind="failed",
            finished_at=slot - timedelta(days=1, minutes=-2))

    row = _judged(db)["daily"]
    assert not row["stale"], row
    assert row["deadline"] == slot + timedelta(seconds=2 * JITTER_S + 3 * 60 + GRACE_S)


def test_a_dealer_resumed_after_a_long_pause_counts_its_deadline_from_the_resume(db):
    """`forecourt schedule resume` of a dealer paused for ten days made it stale at once
    (its last success is ten days old) and paged on-call for the operator's own action."""
    now = _now(db)
    dormant = dealers_db.create(db, slug="dormant", name="Dormant",
                                website_url="https://d.test/", schedule_interval_s=3600,
                                paused=True)
    _succeeded(db, dormant.id, now - timedelta(days=10), took_min=5)
    assert "dormant" not in _judged(db), "a paused dealer promises nothing"

    resumed = run("schedule", "resume", "dormant")
    assert resumed.returncode == 0, resumed.stderr
    row = _judged(db)["dormant"]
    assert not row["stale"], row
    assert row["success_age_s"] >= 10 * 86_400, "its inventory is still said to be old"
    assert freshness.summary([row])["oldest_success_age_s"] >= 10 * 86_400
    resumed_at = row["scheduled_since"]
    assert resumed_at >= now
    assert row["deadline"] == resumed_at + timedelta(
        seconds=2 * 3600 + 5 * 60 + GRACE_S)

    # the clock moves past that deadline with nothing succeeding: stale
    db.execute("UPDATE dealerships SET scheduled_since = scheduled_since - interval '3 hours'"
               " WHERE id = %s", (dormant.id,))
    row = _judged(db)["dormant"]
    assert row["stale"] and row["last_run_state"] == "succeeded", row

    # pausing it again takes it out of the count, as before
    run("schedule", "pause", "dormant")
    assert "dormant" not in _judged(db)


def test_a_resumed_dealer_that_never_succeeded_is_stale_after_its_first_deadline(db):
    """Resuming must not hide a dealer that never works: it is reported as never succeeded
    throughout, and stale (last run: none) once its first deadline from the resume passes."""
    starter = dealers_db.create(db, slug="starter", name="Starter",
                                website_url="https://s.test/", schedule_cron="0 6 * * *",
                                paused=True)
    db.execute("UPDATE dealerships SET created_at = now() - interval '30 days' WHERE id = %s",
               (starter.id,))
    dealers_db.update(db, starter.id, paused=False)  # what `schedule resume` does
    row = _judged(db)["starter"]
    assert not row["stale"], row
    assert freshness.summary([row])["never_succeeded"] == 1

    db.execute("UPDATE dealerships SET scheduled_since = scheduled_since - interval '3 days'"
               " WHERE id = %s", (starter.id,))
    row = _judged(db)["starter"]
    assert row["stale"], row
    summary = freshness.summary([row])
    assert summary["stale"]["none"] == 1 and summary["never_succeeded"] == 1


def test_a_dealer_given_a_schedule_or_another_one_counts_its_deadline_from_then(db):
    """An unscheduled dealer with an old success, put on a schedule, was stale at once; so
    was a daily dealer moved to hourly, though the scheduler runs either from its next slot
    after the change."""
    now = _now(db)
    adhoc = dealers_db.create(db, slug="adhoc", name="Ad hoc", website_url="https://a.test/")
    _succeeded(db, adhoc.id, now - timedelta(days=40), took_min=5)
    assert "adhoc" not in _judged(db)
    scheduled = run("schedule", "set", "adhoc", "1d")
    assert scheduled.returncode == 0, scheduled.stderr
    row = _judged(db)["adhoc"]
    assert not row["stale"] and row["rescheduled"], row

    # a day later (its first run failed), the operator makes it hourly
    db.execute("UPDATE dealerships SET scheduled_since = scheduled_since - interval '1 day'"
               " WHERE id = %s", (adhoc.id,))
    set_before = _judged(db)["adhoc"]["scheduled_since"]
    assert run("schedule", "set", "adhoc", "1h").returncode == 0
    row = _judged(db)["adhoc"]
    assert not row["stale"] and row["scheduled_since"] > set_before, row
    # setting the same schedule again is no change
    assert run("schedule", "set", "adhoc", "1h").returncode == 0
    assert _judged(db)["adhoc"]["scheduled_since"] == row["scheduled_since"]
