"""Scheduler leadership beyond process death: a frozen leader, a vanished one, a hung Redis."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from datetime import timedelta

import psycopg
import pytest

from crawler.db import connect
from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from crawler.db import schedules as schedules_db
from tests.jobs.conftest import FORECOURT, stop, wait_for

pytestmark = pytest.mark.integration


def _jobs(db, dealer_id):
    return jobs_db.list_for(db, dealer_id)


def _make_due(db, dealer_id):
    db.execute("UPDATE schedule_state SET next_run_at = now() - interval '1 minute'"
               " WHERE dealership_id = %s", (dealer_id,))


def test_a_frozen_leader_is_replaced_and_stands_by_when_it_wakes(db, start_schedulers):
    """A leader stopped (SIGSTOP; stuck in a Redis call; a paused VM) kept its connection and
    with it the lock: the standby waited forever and nothing was scheduled for any dealer.
    The standby now ends the connection of a leader silent for
    FORECOURT_SCHEDULER_LEADER_STALE_S and leads; the old leader, woken, finds its
    connection gone and stands by, without enqueueing the slot again."""
    due = dealers_db.create(db, slug="due", name="Due", website_url="http://127.0.0.1:9/",
                            schedule_interval_s=3600)
    schedulers = start_schedulers(2, FORECOURT_SCHEDULER_LEADER_STALE_S="3")
    old = wait_for(lambda: next((s for s in schedulers
                                 if "this scheduler leads" in s.log.read_text()), None),
                   what="a leader")
    standby = next(s for s in schedulers if s is not old)
    wait_for(lambda: schedules_db.state(db, due.id), what="the dealer's first next run")
    os.killpg(old.pid, signal.SIGSTOP)
    try:
        _make_due(db, due.id)
        [job] = wait_for(lambda: _jobs(db, due.id), timeout=40,
                         what="the standby to take over and enqueue the due dealer")
        lines = standby.log.read_text().splitlines()
        takeover = [line for line in lines if "silent" in line]
        assert len(takeover) == 1, lines
        # it names the old leader (its application_name: host and process id)
        assert "WARNING" in takeover[0] and f":{old.pid}" in takeover[0], takeover
        assert any("this scheduler leads" in line for line in lines)
    finally:
        os.killpg(old.pid, signal.SIGCONT)
    wait_for(lambda: "no longer leads" in old.log.read_text(), what="the old leader to wake")
    time.sleep(1.5)  # several more ticks of both
    assert [j.id for j in _jobs(db, due.id)] == [job.id]
    assert old.poll() is None and "Traceback" not in old.log.read_text()
    assert old.log.read_text().count("this scheduler leads") == 1

    # It stands by: when the new leader dies, the old one leads and schedules again.
    stop(standby, signal.SIGKILL)
    db.execute("UPDATE jobs SET state = 'succeeded', finished_at = now() WHERE id = %s",
               (job.id,))
    _make_due(db, due.id)
    wait_for(lambda: len(_jobs(db, due.id)) == 2, timeout=20, what="the old leader's job")
    assert old.log.read_text().count("this scheduler leads") == 2


def test_a_leader_frozen_mid_tick_does_not_enqueue_the_slot_its_successor_ran(db, monkeypatch):
    """The old leader froze after reading the due dealers; meanwhile its connection is ended
    and the new leader runs the slot. Woken, its tick fails on the lost connection, and had
    its connection lived, the compare-and-set on the next run would refuse the slot."""
    from jobs import scheduler

    dealer = dealers_db.create(db, slug="mid", name="Mid", website_url="http://127.0.0.1:9/",
                               schedule_interval_s=3600)
    schedules_db.set_next(db, dealer.id, schedules_db.server_now(db) - timedelta(minutes=1),
                          None)
    real = schedules_db.scheduled
    ran: list[int] = []
    with connect() as old, connect() as new:
        assert schedules_db.try_lead(old)

        def freezes_after_reading(conn):
            due = real(conn)
            if conn is old:  # frozen here, long enough for the standby to take over
                monkeypatch.setattr(schedules_db, "scheduled", real)
                assert not schedules_db.try_lead(new)
                ended = schedules_db.end_silent_leader(new, 0)
                assert ended["pid"] == old.info.backend_pid
                assert wait_for(lambda: schedules_db.try_lead(new), what="the lock")
                ran.extend(scheduler.tick(new))
            return due

        monkeypatch.setattr(schedules_db, "scheduled", freezes_after_reading)
        with pytest.raises(psycopg.OperationalError):
            scheduler.tick(old)
        assert len(ran) == 1 and [j.id for j in _jobs(db, dealer.id)] == ran

    # Two leaders with live connections: the second to claim the slot enqueues nothing.
    db.execute("UPDATE jobs SET state = 'succeeded', finished_at = now() WHERE id = %s",
               (ran[0],))
    _make_due(db, dealer.id)
    with connect() as other:
        def another_leader_runs_it(conn):
            due = real(conn)
            monkeypatch.setattr(schedules_db, "scheduled", real)
            ran.extend(scheduler.tick(other))
            return due

        monkeypatch.setattr(schedules_db, "scheduled", another_leader_runs_it)
        assert scheduler.tick(db) == []
    assert len(ran) == 2 and sorted(j.id for j in _jobs(db, dealer.id)) == sorted(ran)


def test_an_active_leader_is_never_ended_and_an_idle_silent_one_is(db):
    """A leader in a long query is alive: only an idle one that stayed silent is ended."""
    with connect() as leader, connect() as standby:
        assert schedules_db.try_lead(leader)
        busy = threading.Thread(target=lambda: leader.execute("SELECT pg_sleep(2)"))
        busy.start()
        try:
            time.sleep(1.0)  # the query has run longer than the 0.5 s allowed below
            assert schedules_db.end_silent_leader(standby, 0.5) is None
        finally:
            busy.join()
        assert not schedules_db.try_lead(standby) and not leader.closed
        time.sleep(0.7)  # idle, and silent longer than 0.5 s
        ended = schedules_db.end_silent_leader(standby, 0.5)
        assert ended is not None and ended["pid"] == leader.info.backend_pid
        assert ended["state"] == "idle"
        assert schedules_db.try_lead(standby)
        with pytest.raises(psycopg.OperationalError):
            leader.execute("SELECT 1")


def test_the_schedulers_connection_names_itself_and_keeps_alive_on_the_server(db):
    """A leader's machine that lost power held the lock until the server's TCP keepalive
    (about 2 hours by default) noticed; the scheduler's session sets its own, like every
    connection (tests/test_connections.py; on a Unix socket keepalives do not apply)."""
    from crawler.db.connect import KEEPALIVE
    from jobs import scheduler

    with scheduler.leader_connection() as conn:
        def show(name):
            return conn.execute(f"SHOW {name}").fetchone()[name]

        assert show("application_name") == \
            f"forecourt scheduler {socket.gethostname()}:{os.getpid()}"
        if (conn.info.host or "/").startswith("/"):
            assert conn.info.get_parameters()["keepalives_idle"] == str(KEEPALIVE[0])
        else:
            assert (int(show("tcp_keepalives_idle")), int(show("tcp_keepalives_interval")),
                    int(show("tcp_keepalives_count"))) == KEEPALIVE
            assert show("tcp_user_timeout") != "0"


def test_a_scheduler_whose_redis_never_answers_refuses_to_start_instead_of_hanging(
        job_env, tmp_path):
    """Redis that accepts a connection and never answers (a hung server, a black-holed
    network): the scheduler's start-up check gives up after its socket timeout and says so in
    one line, instead of hanging in its first enqueue (no socket timeout) for ever."""
    from jobs import broker

    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)  # the kernel completes connections; nothing ever reads or answers
        port = hole.getsockname()[1]
        try:
            out = subprocess.run([FORECOURT, "scheduler"], capture_output=True, text=True,
                                 timeout=60, env={**job_env,
                                                  "REDIS_URL": f"redis://127.0.0.1:{port}/0"})
        except subprocess.TimeoutExpired:
            pytest.fail("the scheduler hung on a Redis that never answers")
    assert out.returncode != 0
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("error: ") and f"127.0.0.1:{port}" in line, line
    # and once running, every Redis command the broker sends gives up the same way
    kwargs = broker.make_broker().client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == broker.REDIS_TIMEOUT_S


def test_a_leader_stale_time_not_well_above_the_tick_is_refused_in_one_line(job_env):
    """A leader is silent for a tick between passes: a stale time within a few ticks would
    have the standbys end a healthy leader again and again."""
    out = subprocess.run([FORECOURT, "scheduler"], capture_output=True, text=True, timeout=30,
                         env={**job_env, "FORECOURT_SCHEDULER_TICK_S": "5",
                              "FORECOURT_SCHEDULER_LEADER_STALE_S": "10"})
    assert out.returncode != 0
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("error: ") and "FORECOURT_SCHEDULER_LEADER_STALE_S" in line, line
    assert "FORECOURT_SCHEDULER_TICK_S" in line, line


def test_an_unset_leader_stale_time_is_two_minutes_or_four_ticks_of_a_longer_tick(
        monkeypatch):
    """An operator's long tick set before the setting existed still starts."""
    from crawler.config import Settings

    monkeypatch.delenv("FORECOURT_SCHEDULER_LEADER_STALE_S", raising=False)
    monkeypatch.delenv("FORECOURT_SCHEDULER_TICK_S", raising=False)
    assert Settings().scheduler_leader_stale_s == 120
    assert Settings(scheduler_tick_s=60).scheduler_leader_stale_s == 240
