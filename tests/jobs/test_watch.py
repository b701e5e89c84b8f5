"""The attempt's watch (jobs.attempt.watch) against a real PostgreSQL: it heartbeats the job
on a connection of its own, reopens it when it is cut, and gives the attempt up only when
it cannot for longer than its bound. (A crawl that runs on through a cut, with a real
worker: tests/jobs/test_recovery.py.)"""

from __future__ import annotations

import logging
import socket
import time

import pytest

from crawler.db import connect
from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from crawler.errors import ConfigError
from tests.jobs.conftest import wait_for

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        return hole.getsockname()[1]


def _watching(db, job_id: int) -> list[dict]:
    return db.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                      (f"forecourt watch job {job_id}",)).fetchall()


def test_a_watch_that_cannot_reconnect_gives_the_attempt_up_past_its_bound(
        db, monkeypatch, caplog):
    """Cut, and with PostgreSQL refusing it meanwhile, the watch tries again at each beat
    and reports nothing (the crawl runs on); once no beat has gone through for its bound it
    raises, and its caller gives the attempt up as before (crawler.crawl_runner kills the
    crawl child, the worker retries the job)."""
    from jobs import attempt

    dealer = dealers_db.create(db, slug="watched", name="Watched",
                               website_url="http://127.0.0.1:9/")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
    jobs_db.start(db, job.id, "test-worker")
    should_stop, state, close = attempt.watch(job.id, "test-worker", give_up_after_s=1.0)
    try:
        assert should_stop() is False  # a beat, on its own connection
        (session,) = _watching(db, job.id)
        refused = f"postgresql://postgres@127.0.0.1:{_free_port()}/postgres"
        monkeypatch.setattr(attempt, "connect", lambda **kw: connect(refused, **kw))
        db.execute("SELECT pg_terminate_backend(%s)", (session["pid"],))
        with caplog.at_level(logging.INFO, logger="forecourt.jobs"), \
                pytest.raises(ConfigError, match="cannot connect"):
            while True:
                assert should_stop() is False, state
                time.sleep(0.05)
    finally:
        close()
    lines = [r.getMessage() for r in caplog.records]
    assert any("reconnecting" in line for line in lines), lines  # once, at the cut
    assert "giving the attempt up" in lines[-1], lines


def test_a_cut_watch_beats_again_on_a_new_connection_and_still_hears_a_cancel(db):
    from jobs import attempt, service

    dealer = dealers_db.create(db, slug="rewatched", name="Rewatched",
                               website_url="http://127.0.0.1:9/")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
    jobs_db.start(db, job.id, "test-worker")
    should_stop, state, close = attempt.watch(job.id, "test-worker", give_up_after_s=60)
    try:
        assert should_stop() is False
        (session,) = _watching(db, job.id)
        db.execute("SELECT pg_terminate_backend(%s)", (session["pid"],))
        service.cancel(db, job.id)
        wait_for(should_stop, what="the watch to hear the cancel")
        assert state["reason"] == "cancelled"
        (again,) = _watching(db, job.id)
        assert again["pid"] != session["pid"]
    finally:
        close()
