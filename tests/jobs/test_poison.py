"""A job whose attempts kill their worker every time (OOM, SIGKILL) becomes a dead letter
once it has used up its attempts, whichever delivery finds it interrupted (real PostgreSQL,
Redis and, last, real workers)."""

from __future__ import annotations

import signal
import time

import pytest

from crawler.db import dealers as dealers_db
from crawler.db import job_ends as ends_db
from crawler.db import job_queue as queue_db
from crawler.db import jobs as jobs_db
from tests.jobs.conftest import site_copy, slow_routes, stop, wait_final, wait_for


def _interrupted(db, slug: str, attempts: int, queue: str = "priority", errors: list = ()):
    """A job whose worker died during attempt `attempts` (its heartbeat long stale)."""
    from psycopg.types.json import Jsonb

    dealer = dealers_db.create(db, slug=slug, name=slug, website_url="http://127.0.0.1:9/")
    job, _ = jobs_db.create_or_get_active(
        db, dealer.id, "crawl", "schedule" if queue == "scheduled" else "operator")
    queue_db.set_message(db, job.id, queue, f"message-{slug}")
    db.execute("UPDATE jobs SET state = 'running', attempts = %s, worker = 'gone:1:T',"
               " errors = %s, started_at = now() - interval '10 minutes',"
               " heartbeat_at = now() - interval '10 minutes' WHERE id = %s",
               (attempts, Jsonb(list(errors)), job.id))
    return jobs_db.get(db, job.id)


def _assert_buried(job, attempts: int) -> None:
    assert job.state == "dead", (job.state, job.errors)
    assert job.attempts == attempts and job.error_kind == "abandoned"
    last = job.errors[-1]
    assert last["kind"] == "abandoned" and last["attempt"] == attempts
    assert "worker died" in last["error"] and "out of memory" in last["error"]
    assert job.finished_at is not None and job.phase == "done"


def test_a_redelivery_buries_an_interrupted_job_out_of_attempts_instead_of_running_it(db):
    from crawler.config import get_settings
    from jobs import execution

    spent = get_settings().job_max_attempts
    job = _interrupted(db, "poison-redelivered", attempts=spent)
    assert execution._claim(db, job.id, "next:2:T", job.message_id) is None
    _assert_buried(jobs_db.get(db, job.id), spent)
    assert [d.id for d in ends_db.dead_letters(db)] == [job.id]
    # idempotent: a second delivery of the same message finds it dead and does nothing
    assert execution._claim(db, job.id, "other:3:T", job.message_id) is None
    again = jobs_db.get(db, job.id)
    assert again.state == "dead" and len(again.errors) == 1


def test_an_interrupted_job_with_attempts_left_runs_again(db):
    from crawler.config import get_settings
    from jobs import execution

    job = _interrupted(db, "poison-not-yet", attempts=get_settings().job_max_attempts - 1)
    claimed = execution._claim(db, job.id, "next:2:T", job.message_id)
    assert claimed is not None and claimed.state == "running"
    assert claimed.attempts == job.attempts + 1
    assert [e["kind"] for e in claimed.errors] == ["abandoned"]


def test_chromium_hand_offs_do_not_count_against_the_attempts(db):
    from crawler.config import get_settings
    from jobs import execution, outcome

    spent = get_settings().job_max_attempts
    handoffs = [{"kind": outcome.NO_CHROMIUM, "attempt": 1, "error": "no Chromium"}]
    job = _interrupted(db, "poison-handed-on", attempts=spent, errors=handoffs)
    claimed = execution._claim(db, job.id, "next:2:T", job.message_id)
    assert claimed is not None and claimed.attempts == spent + 1


def test_a_scheduled_slot_buries_an_interrupted_job_out_of_attempts_instead_of_running_it(db):
    from crawler.config import get_settings
    from jobs import execution

    spent = get_settings().job_max_attempts
    job = _interrupted(db, "poison-scheduled", attempts=spent, queue="scheduled")
    execution._rescue_interrupted(job.id + 1000, "message-of-another-job")
    _assert_buried(jobs_db.get(db, job.id), spent)


def test_two_deliveries_at_once_bury_the_job_once_and_neither_runs_it(db):
    """A scheduled slot's take-over and the redelivery of the job's own message decide
    under the job's row lock: the one that waits reads the other's burial."""
    import threading

    from crawler.config import get_settings
    from crawler.db import connect
    from jobs import execution, failures

    spent = get_settings().job_max_attempts
    job = _interrupted(db, "poison-race", attempts=spent)
    claimed: list = []
    with connect() as other:
        with other.transaction():
            assert failures.bury_if_spent(other, job.id, 2) is not None  # not committed yet
            def deliver() -> None:
                with connect() as conn:
                    claimed.append(execution._claim(conn, job.id, "next:2:T", job.message_id))

            thread = threading.Thread(target=deliver)
            thread.start()
            wait_for(lambda: db.execute(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%%FOR UPDATE%%'").fetchone(), what="the claim to wait")
        thread.join()
    assert claimed == [None]
    dead = jobs_db.get(db, job.id)
    _assert_buried(dead, spent)
    assert len(dead.errors) == 1


def test_a_crawl_that_kills_its_worker_every_time_ends_dead(db, site, start_workers, tmp_path):
    """Each attempt's worker is killed with -9 mid-crawl; with FORECOURT_JOB_MAX_ATTEMPTS=2
    the redelivery after the second kill buries the job instead of starting a third."""
    from jobs import service

    base = site(site_copy(tmp_path, slow_routes(3)))
    dealer = dealers_db.create(db, slug="poison", name="Poison",
                               website_url=base + "/inventory/")
    env = {"FORECOURT_JOB_MAX_ATTEMPTS": "2"}
    job, _ = service.trigger(db, dealer.id, "crawl", "operator")
    for attempt in (1, 2):
        (worker,) = start_workers(1, threads=1, **env)
        wait_for(lambda a=attempt: (j := jobs_db.get(db, job.id)).state == "running"
                 and j.attempts == a, timeout=40, what=f"attempt {attempt}")
        stop(worker, signal.SIGKILL)
        time.sleep(4)  # past the broker heartbeat (3 s): the message is due back
    start_workers(1, threads=1, **env)
    done = wait_final(db, job.id, timeout=40)
    _assert_buried(done, 2)
    assert [e["kind"] for e in done.errors] == ["abandoned", "abandoned"]


pytestmark = pytest.mark.integration


def test_a_worker_without_chromium_takes_over_no_interrupted_crawl_that_must_render(
        db, monkeypatch):
    """A scheduled slot takes over the scheduled jobs whose worker died, before its own. In
    the soak's mixed fleet (bench/bench_soak.py --without-chromium) a worker without
    Chromium took over a JavaScript dealer's crawl interrupted on a worker with Chromium: it
    ran a whole crawl (20 s under load) only to learn it needs Chromium, and handed it to
    the back of the render queue. Such a crawl is left to a worker with Chromium (its
    message, redelivered on the render queue, or another's slot); any other is taken over."""
    from crawler.config import reset_settings
    from jobs import execution

    must_render = _interrupted(db, "rescue-rendered", attempts=1, queue="scheduled")
    db.execute("UPDATE dealerships SET platform = 'javascript' WHERE id = %s",
               (must_render.dealership_id,))
    plain = _interrupted(db, "rescue-plain", attempts=1, queue="scheduled")
    monkeypatch.setenv("FORECOURT_CHROMIUM_PATH", "/nonexistent/chromium")
    reset_settings()
    try:
        execution._rescue_interrupted(plain.id + 1000, "message-of-another-job")
    finally:
        monkeypatch.undo()
        reset_settings()
    left = jobs_db.get(db, must_render.id)
    assert (left.state, left.attempts, left.worker) == ("running", 1, "gone:1:T"), left.errors
    taken = jobs_db.get(db, plain.id)  # run here (its site refuses: a retry is queued)
    assert taken.attempts == 2 and [e["kind"] for e in taken.errors][0] == "abandoned"
