"""Faults against real processes on 127.0.0.1, each judged by the final database state:
a worker killed with SIGKILL in the middle of a feed's store batch, or at the removal step
of a re-ingest (its statement open, or committed with the job not yet settled), or alone
(the OOM killer's way) leaving no feed stage workers behind, Redis
restarted (empty) while jobs are queued and running, PostgreSQL restarted (crash-style)
during an ingest.

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
        if job.state != "failed":  # no other end is ever left (crawler/db/job_queue.py)
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
    from ingest.feed_job import run_job

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


def test_worker_process_killed_alone_mid_feed_leaves_no_stage_workers_behind(
        db, fault_env, workers, feed_file):
    """The OOM killer's way: SIGKILL to the busiest process alone, not its group. Its feed
    stage workers (spawned processes that only stage rows) used to live on, blocked on their
    task queue for ever, each holding its imports and the VIN data; they now die with it."""
    from crawler.db import connect

    env = servers.env_for(fault_env, FORECOURT_REDIS_NAMESPACE=_namespace(),
                          FORECOURT_FEED_BATCH_SIZE=str(BATCH),
                          FORECOURT_FEED_STAGE_MIN_BYTES="1")  # workers from the start
    workers(env, "a"), workers(env, "b")
    dealer = dealers_db.create(db, slug="oom", name="OOM", feed_url=str(feed_file))
    with connect() as locker:
        locker.execute("BEGIN")
        locker.execute("LOCK TABLE vehicle_events IN SHARE MODE")  # the first write waits
        [job_id] = servers.trigger(env, "feed", [dealer.id])
        pid = int(wait_for(lambda: jobs_db.get(db, job_id).worker, what="a worker"
                           ).split(":")[1])
        stagers = wait_for(lambda: [p for p in psutil.Process(pid).children(recursive=True)
                                    if "multiprocessing" in " ".join(p.cmdline())],
                           what="the feed's stage workers")
        os.kill(pid, 9)
        locker.execute("ROLLBACK")

    def gone(p: psutil.Process) -> bool:
        return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE

    wait_for(lambda: all(gone(p) for p in stagers), timeout=30,
             what=f"the stage workers {[p.pid for p in stagers]} to die with their parent")
    job = _final(db, job_id)
    assert job.state == "succeeded" and job.attempts == 2, job.errors
    assert _count(db, dealer.id) == ROWS


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


# A re-ingest that changes every kind of thing: rows 0-19 gone (removed), 580-599 back
# (relisted, gone the day before), 600-629 new (added), some re-priced (price_changed).
LIFECYCLE_KINDS = ("added", "price_changed", "relisted", "removed")
REMOVING = """
    SELECT pid FROM pg_stat_activity
     WHERE datname = current_database() AND wait_event_type = 'Lock'
       AND query LIKE '%%SET status = ''removed''%%'
"""


def _day_feed(path, keep, changed: float = 0.0):
    import csv

    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(make_feed.HEADER)
        writer.writerows(r for i, r in enumerate(make_feed.rows(ROWS + 30, 5, changed))
                         if keep(i))
    return path


def _lot_before_the_run(db, tmp_path, slug: str):
    """A dealer with two days of feed ingested (600 vehicles, then 20 of them sold), and
    the third day's feed (every kind of change) as its feed URL."""
    from ingest.feed_job import run_job

    days = [_day_feed(tmp_path / f"{slug}-0.csv", lambda i: i < ROWS),
            _day_feed(tmp_path / f"{slug}-1.csv", lambda i: i < ROWS - 20),
            _day_feed(tmp_path / f"{slug}-2.csv", lambda i: i >= 20, changed=0.1)]
    dealer = dealers_db.create(db, slug=slug, name=slug, feed_url=str(days[2]))
    for day in days[:2]:
        job, _ = jobs_db.create_or_get_active(db, dealer.id, "feed", "operator",
                                              {"source": str(day)})
        jobs_db.start(db, job.id, "test")
        assert run_job(db, job.id, str(day)).state == "succeeded"
    return dealer


def _outcome(db, dealer_id: int, job_id: int) -> tuple[list, list]:
    vehicles = [(r["vin"], r["status"], str(r["price"])) for r in db.execute(
        "SELECT vin, status, price FROM vehicles WHERE dealership_id = %s ORDER BY vin",
        (dealer_id,))]
    events = [(r["vin"], r["kind"]) for r in db.execute(
        "SELECT vin, kind FROM vehicle_events WHERE job_id = %s ORDER BY vin, kind",
        (job_id,))]
    return vehicles, events


@pytest.mark.parametrize("when", ["removing", "removed"])
def test_worker_killed_at_the_removal_step_of_a_re_ingest_changes_and_counts_all_once(
        db, fault_env, workers, tmp_path, when):
    """SIGKILL while the run's removal statement is open ("removing": rolled back, the next
    attempt removes), or once it has committed but before the job was settled ("removed":
    the next attempt finds them removed already). Either way the job ends as a fault-free
    run of the same feed would: the same vehicles and events, none twice, and counters that
    count what the job changed (its events), not only what its last attempt did."""
    import threading

    from crawler.db import connect

    dealer = _lot_before_the_run(db, tmp_path, f"lot-{when}")
    sold = make_feed.rows(1, 5).__next__()[make_feed.HEADER.index("VIN")]  # row 0: removed
    env = servers.env_for(fault_env, FORECOURT_REDIS_NAMESPACE=_namespace(),
                          FORECOURT_FEED_BATCH_SIZE=str(BATCH))
    procs = {"a": workers(env, "a"), "b": workers(env, "b")}
    with connect() as locker, connect() as holder:
        # one of the cars to remove is locked: the removal statement waits for it
        locker.execute("BEGIN")
        locker.execute("SELECT 1 FROM vehicles WHERE dealership_id = %s AND vin = %s"
                       " FOR UPDATE", (dealer.id, sold))
        [job_id] = servers.trigger(env, "feed", [dealer.id])
        wait_for(lambda: db.execute(REMOVING).fetchone(), what="the removal to wait")
        victim_worker = jobs_db.get(db, job_id).worker
        victim = _worker_running(procs, jobs_db.get(db, job_id))
        if when == "removed":
            # queue for the job's row (the removal's transaction holds it), then let the
            # removal commit: the job is now held before its attempt can settle it
            holder.execute("BEGIN")
            held = threading.Thread(target=holder.execute, args=(
                "SELECT 1 FROM jobs WHERE id = %s FOR UPDATE", (job_id,)))
            held.start()
            wait_for(lambda: db.execute(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE 'SELECT 1 FROM jobs WHERE id%%'").fetchone(),
                what="the holder to queue for the job's row")
            locker.execute("ROLLBACK")
            held.join()
            assert db.execute("SELECT count(*) AS n FROM vehicle_events WHERE job_id = %s"
                              " AND kind = 'removed'", (job_id,)).fetchone()["n"] == 20
            kill_group(procs[victim])
            # A statement the dead worker had already sent (settling the job, queued behind
            # the holder) would still run and commit once the holder lets go: the server
            # notices a vanished client only when it answers. End its waiting backends, as
            # the server itself would (keepalives), so the attempt really dies unsettled.
            db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                       " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                       " AND pid <> %s", (holder.info.backend_pid,))
            holder.execute("ROLLBACK")
        else:
            kill_group(procs[victim])
            locker.execute("ROLLBACK")  # the dead worker's removal then rolls back
    job = _final(db, job_id)
    assert job.state == "succeeded" and job.attempts == 2, job.errors
    # the interrupted attempt is on record, with the worker that ran it
    assert [(e["attempt"], e["kind"], e.get("worker")) for e in job.errors] == [
        (1, "abandoned", victim_worker)]
    vehicles, events = _outcome(db, dealer.id, job_id)
    assert len(events) == len(set(events))  # no change recorded twice
    by_kind = {k: sum(1 for _, e in events if e == k) for k in LIFECYCLE_KINDS}
    assert by_kind["removed"] == 20 and by_kind["relisted"] == 20 and by_kind["added"] == 30
    assert {k: job.counters.get(k, 0) for k in LIFECYCLE_KINDS} == by_kind
    assert job.report["removed"] == 20
    assert db.execute("SELECT count(*) AS n FROM run_seen WHERE job_id = %s",
                      (job_id,)).fetchone()["n"] == 0

    # a fault-free run of the same feeds ends the same way
    from ingest.feed_job import run_job

    clean = _lot_before_the_run(db, tmp_path, f"clean-{when}")
    clean_job, _ = jobs_db.create_or_get_active(db, clean.id, "feed", "operator")
    jobs_db.start(db, clean_job.id, "test")
    assert run_job(db, clean_job.id).state == "succeeded"
    assert _outcome(db, clean.id, clean_job.id) == (vehicles, events)
