"""Faults against real processes on 127.0.0.1, each judged by the final database state:
a worker killed with SIGKILL in the middle of a feed's store batch, Redis restarted (empty)
while jobs are queued and running, PostgreSQL restarted (crash-style) during an ingest.

(A worker killed in the middle of a crawl is tests/jobs/test_recovery.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid

import psutil
import pytest

from crawler.config import PROJECT_ROOT
from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from crawler.db import migrate
from crawler.models import FINAL_STATES
from fixtures.tools import make_feed
from tests.faults import servers
from tests.faults.conftest import kill_group, wait_for

pytestmark = pytest.mark.integration

GENERIC = PROJECT_ROOT / "fixtures" / "sites" / "generic"
ROWS, BATCH = 600, 100
# Vehicle data as stored. Not the quality flags (nor the content hash that covers them):
# market-relative rules (price_outlier) judge against the market as it stands when the run
# first meets a model, which after a crash includes the batches the first attempt committed.
COLUMNS = ("vin", "stock_number", "condition", "year", "make", "model", "trim", "body_style",
           "exterior_color", "interior_color", "transmission", "drivetrain", "fuel_type",
           "engine", "mileage", "price", "msrp", "currency", "url", "image_urls",
           "description", "source_hash", "status", "removed_at")
OPEN_WRITE = """
    SELECT pid FROM pg_stat_activity
     WHERE datname = current_database() AND pid <> pg_backend_pid()
       AND backend_xid IS NOT NULL AND query NOT ILIKE 'UPDATE jobs%%'
"""


def _namespace() -> str:
    # inside the session's namespace, so its clean-up at the end removes these keys too
    return f"{os.environ['FORECOURT_REDIS_NAMESPACE']}:fault-{uuid.uuid4().hex[:8]}"


def _stored(conn, dealer_id: int) -> list[tuple]:
    rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM vehicles WHERE dealership_id = %s"
                        " ORDER BY vin", (dealer_id,)).fetchall()
    return [tuple(str(r[c]) for c in COLUMNS) for r in rows]


def _events(conn, dealer_id: int) -> list[tuple]:
    return [(r["vin"], r["kind"]) for r in conn.execute(
        "SELECT vin, kind FROM vehicle_events WHERE dealership_id = %s ORDER BY vin, kind",
        (dealer_id,)).fetchall()]


def _count(conn, dealer_id: int, table: str = "vehicles") -> int:
    return conn.execute(f"SELECT count(*) AS n FROM {table} WHERE dealership_id = %s",
                        (dealer_id,)).fetchone()["n"]


def _final(conn, job_id: int, timeout: float = 90):
    def settled():
        job = jobs_db.get(conn, job_id)
        if job.state not in FINAL_STATES:
            return None
        if job.state != "failed":  # no other end is ever left (crawler/db/jobs.py)
            return job
        time.sleep(0.6)  # a failed attempt is requeued a moment later: an end must hold
        again = jobs_db.get(conn, job_id)
        return again if again.updated_at == job.updated_at else None

    return wait_for(settled, timeout=timeout, interval=0.2, what=f"job {job_id} to end")


def _catch_open_batch(conn, dealer_id: int, timeout: float = 60) -> None:
    """Return while a store batch is open (a write transaction of another session), after at
    least one batch was committed."""
    wait_for(lambda: _count(conn, dealer_id) >= BATCH, timeout=timeout, interval=0.02,
             what="a first committed batch")
    wait_for(lambda: conn.execute(OPEN_WRITE).fetchone(), timeout=timeout, interval=0.003,
             what="an open store batch")


def _worker_running(proc_by_name: dict, job) -> str:
    pid = int(job.worker.split(":")[1])
    for name, proc in proc_by_name.items():
        family = [proc.pid, *(p.pid for p in psutil.Process(proc.pid).children(recursive=True))]
        if pid in family:
            return name
    raise AssertionError(f"no started worker runs {job.worker}")


@pytest.fixture(scope="module")
def feed_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("feed") / "inventory.csv"
    make_feed.write(path, ROWS, seed=5)
    return path


def test_worker_killed_mid_feed_store_batch_finishes_elsewhere_storing_the_same(
        db, fault_env, workers, feed_file):
    from ingest.feed import run_job

    # the rows after the first 200 are staged in a worker process of the worker's own
    env = servers.env_for(fault_env, FORECOURT_REDIS_NAMESPACE=_namespace(),
                          FORECOURT_FEED_BATCH_SIZE=str(BATCH),
                          FORECOURT_FEED_STAGE_MIN_ROWS="200")
    t0 = time.monotonic()
    procs = {"a": workers(env, "a"), "b": workers(env, "b")}
    print(f"workers ready {time.monotonic() - t0:.1f} s")
    dealer = dealers_db.create(db, slug="victim", name="Victim", feed_url=str(feed_file))
    [job_id] = servers.trigger(env, "feed", [dealer.id])

    _catch_open_batch(db, dealer.id)
    victim = _worker_running(procs, jobs_db.get(db, job_id))
    kill_group(procs[victim])
    time.sleep(0.5)  # the server notices the dead client and rolls its batch back
    after_kill = _count(db, dealer.id)
    assert after_kill % BATCH == 0 and 0 < after_kill < ROWS  # whole batches only
    assert _count(db, dealer.id, "vehicle_events") == after_kill

    print(f"killed {time.monotonic() - t0:.1f} s")
    job = _final(db, job_id)
    print(f"final {time.monotonic() - t0:.1f} s")
    assert job.state == "succeeded", job.errors
    assert job.attempts == 2, (job.errors, [p.log.read_text()[-3000:] for p in procs.values()])
    assert _worker_running({k: v for k, v in procs.items() if k != victim}, job)
    stored, events = _stored(db, dealer.id), _events(db, dealer.id)
    assert len(stored) == ROWS and events == sorted((r[0], "added") for r in stored)

    # a fault-free run of the same feed stores exactly the same vehicles and events
    db.execute("DELETE FROM dealerships WHERE id = %s", (dealer.id,))
    clean = dealers_db.create(db, slug="clean", name="Clean", feed_url=str(feed_file))
    clean_job, _ = jobs_db.create_or_get_active(db, clean.id, "feed", "operator")
    jobs_db.start(db, clean_job.id, "test")
    assert run_job(db, clean_job.id).state == "succeeded"
    print(f"baseline {time.monotonic() - t0:.1f} s")
    baseline = _stored(db, clean.id)
    diff = [(c, a, b) for x, y in zip(baseline, stored, strict=False)
            for c, a, b in zip(COLUMNS, x, y, strict=True)
            if a != b]
    assert baseline == stored, diff[:5]
    assert _events(db, clean.id) == events


def _site_copy(tmp_path, delay_s: float):
    root = tmp_path / "site"
    shutil.copytree(GENERIC, root)
    pages = sorted("/inventory/" + p.stem for p in (GENERIC / "inventory").glob("*.html")
                   if p.stem != "index")
    (root / "routes.json").write_text(json.dumps({p: {"delay_s": delay_s} for p in pages}))
    return root


def test_redis_restarted_empty_with_jobs_queued_and_running_loses_none(
        db, fault_env, workers, site, tmp_path):
    redis = servers.Redis(tmp_path / "redis")
    redis.start()
    try:
        env = servers.env_for(fault_env, REDIS_URL=redis.url,
                              FORECOURT_REDIS_NAMESPACE=_namespace())
        base = site(_site_copy(tmp_path, 0.3))
        workers(env, "w", threads=2)
        dealers = [dealers_db.create(db, slug=f"d{i}", name=f"D{i}",
                                     website_url=base + "/inventory/",
                                     settings={"scrapy": {"AUTOTHROTTLE_ENABLED": False}})
                   for i in range(4)]
        ids = servers.trigger(env, "crawl", [d.id for d in dealers])
        states = lambda: [jobs_db.get(db, i).state for i in ids]  # noqa: E731
        wait_for(lambda: states().count("running") == 2 and states().count("queued") == 2,
                 timeout=30, what="two running and two queued")
        redis.restart()  # every message, queued or in flight, is gone
        done = [_final(db, i, timeout=120) for i in ids]
    finally:
        redis.kill()
    assert [j.state for j in done] == ["succeeded"] * 4, [(j.state, j.errors) for j in done]
    per_dealer = db.execute("SELECT dealership_id, count(*) AS n FROM jobs GROUP BY 1"
                            ).fetchall()
    assert sorted(r["n"] for r in per_dealer) == [1, 1, 1, 1]  # nothing duplicated
    for dealer in dealers:
        assert _count(db, dealer.id) == 10
        assert [k for _, k in _events(db, dealer.id)] == ["added"] * 10


def test_postgres_restarted_during_ingest_commits_no_partial_batch_and_finishes(
        fault_env, workers, tmp_path, feed_file):
    pg = servers.Postgres(tmp_path)
    try:
        with pg.connect() as conn:
            migrate(conn)
            dealer = dealers_db.create(conn, slug="pgfault", name="PG",
                                       feed_url=str(feed_file))
        env = servers.env_for(fault_env, DATABASE_URL=pg.url,
                              FORECOURT_REDIS_NAMESPACE=_namespace(),
                              FORECOURT_FEED_BATCH_SIZE=str(BATCH),
                              FORECOURT_JOB_MIN_BACKOFF_S="1", FORECOURT_JOB_MAX_BACKOFF_S="2")
        workers(env, "w")
        [job_id] = servers.trigger(env, "feed", [dealer.id])
        with pg.connect() as conn:
            _catch_open_batch(conn, dealer.id)
        pg.restart()
        with pg.connect() as conn:
            after = _count(conn, dealer.id)
            assert after % BATCH == 0 and after < ROWS  # the open batch was not committed
            assert _count(conn, dealer.id, "vehicle_events") == after
            job = _final(conn, job_id, timeout=120)
            assert job.state == "succeeded" and job.attempts >= 2, job.errors
            reasons = " ".join(e["error"] for e in job.errors).lower()
            assert job.errors and any(w in reasons for w in (
                "connection", "terminat", "server closed", "shut", "heartbeat")), job.errors
            stored = _stored(conn, dealer.id)
            assert len(stored) == ROWS
            assert _events(conn, dealer.id) == sorted((r[0], "added") for r in stored)
    finally:
        pg.stop()
