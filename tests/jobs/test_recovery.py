"""A worker killed with SIGKILL mid-crawl: its job is redelivered and finished elsewhere."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import psutil
import pytest

from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from tests.jobs.conftest import (
    AT_ONCE,
    DETAIL_PATHS,
    EXPECTED_VINS,
    FORECOURT,
    site_copy,
    slow_routes,
    stop,
    wait_final,
    wait_for,
)

pytestmark = pytest.mark.integration

COLUMNS = ("vin", "stock_number", "condition", "year", "make", "model", "trim", "mileage",
           "price", "msrp", "url", "image_urls", "quality_score", "quality_flags",
           "content_hash", "status")


def _family(proc) -> dict[int, psutil.Process]:
    root = psutil.Process(proc.pid)
    return {p.pid: p for p in [root, *root.children(recursive=True)]}


def _stored(db, dealer_id: int, base: str) -> list[tuple]:
    rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM vehicles WHERE dealership_id = %s"
                      " ORDER BY vin", (dealer_id,)).fetchall()
    return [tuple(str(r[c]).replace(base, "BASE") for c in COLUMNS) for r in rows]


def _events(db, dealer_id: int) -> list[tuple]:
    return [(r["vin"], r["kind"]) for r in db.execute(
        "SELECT vin, kind FROM vehicle_events WHERE dealership_id = %s ORDER BY vin, kind",
        (dealer_id,)).fetchall()]


def test_worker_killed_mid_crawl_has_its_job_finished_by_another(db, site, start_workers,
                                                                tmp_path):
    from jobs import service

    base = site(site_copy(tmp_path, slow_routes(0.3, step_s=0.15)))
    # Small store batches and every page requested at once: vehicles are stored one pair
    # at a time as their pages answer, so the first attempt has stored some when killed.
    settings = {"scrapy": {"FORECOURT_BATCH_SIZE": 2, "AUTOTHROTTLE_ENABLED": False,
                           "CONCURRENT_REQUESTS_PER_DOMAIN": 16}}
    first, second = start_workers(2, threads=1)
    dealer = dealers_db.create(db, slug="killed", name="Killed",
                               website_url=base + "/inventory/", settings=settings)
    job, _ = service.trigger(db, dealer.id, "crawl", "operator")
    running = wait_for(lambda: (j := jobs_db.get(db, job.id)).state == "running"
                       and j.counters.get("upserted", 0) >= 2 and j, what="vehicles stored")
    pid = int(running.worker.split(":")[1])
    victim, survivor = (first, second) if pid in _family(first) else (second, first)
    crawl_child = next(p for p in _family(victim).values()
                       if "crawler.crawl_process" in " ".join(p.cmdline()))
    killed_at = time.monotonic()
    stop(victim, signal.SIGKILL)  # the worker's process group: main and worker process
    # The crawl child (its own session) dies with its parent: it cannot write beside the
    # attempt that replaces it.
    wait_for(lambda: not crawl_child.is_running() or
             crawl_child.status() == psutil.STATUS_ZOMBIE, timeout=5, what="the orphan to die")
    wait_for(lambda: jobs_db.get(db, job.id).attempts == 2, timeout=30, what="redelivery")
    print(f"redelivered and restarted {time.monotonic() - killed_at:.1f} s after the kill")
    done = wait_final(db, job.id, timeout=60)
    assert done.state == "succeeded" and done.attempts == 2, done.errors
    assert int(done.worker.split(":")[1]) in _family(survivor)
    assert {r[0] for r in _stored(db, dealer.id, base)} == EXPECTED_VINS

    stored, events = _stored(db, dealer.id, base), _events(db, dealer.id)
    assert [k for _, k in events] == ["added"] * 10

    # Exactly what an uninterrupted crawl of the same site stores (the first dealer goes,
    # so the baseline's vehicles are not flagged as another dealer's duplicates).
    db.execute("DELETE FROM dealerships WHERE id = %s", (dealer.id,))
    baseline = dealers_db.create(db, slug="baseline", name="Baseline",
                                 website_url=base + "/inventory/", settings=settings)
    clean, _ = service.trigger(db, baseline.id, "crawl", "operator")
    assert wait_final(db, clean.id, timeout=60).state == "succeeded"
    assert stored == _stored(db, baseline.id, base)
    assert events == _events(db, baseline.id)


def _scheduled_waiting_in_redis() -> int:
    import redis

    from crawler.config import get_settings
    from crawler.db import redis_url

    client = redis.Redis.from_url(redis_url())
    return client.llen(f"{get_settings().redis_namespace}:dramatiq:scheduled")


def test_a_killed_workers_scheduled_job_runs_again_before_the_backlog_queued_after_it(
        db, site, start_workers, tmp_path):
    """Dramatiq puts a dead worker's unacked message back at the back of its queue
    (dispatch.lua: rpush), so the interrupted job used to wait behind every scheduled job
    queued after it, its row saying `running` meanwhile. The first scheduled message to get
    a slot now takes the interrupted job over and runs it first."""
    from jobs import service

    # still running when its worker is killed; its second attempt takes the slow pages at once
    slow = site(site_copy(tmp_path, slow_routes(2.5), name="slow"))
    quick = site(site_copy(tmp_path, {}, name="quick"))
    (doomed,) = start_workers(1, threads=2)  # one scheduled slot
    jobs = []
    for i, base in enumerate((slow, quick, quick)):
        dealer = dealers_db.create(db, slug=f"line-{i}", name=f"Line {i}",
                                   website_url=base + "/inventory/",
                                   settings=AT_ONCE if base == slow else {})
        jobs.append(service.trigger(db, dealer.id, "crawl", "schedule")[0])
    wait_for(lambda: jobs_db.get(db, jobs[0].id).state == "running", what="the first job")
    assert _scheduled_waiting_in_redis() == 2  # the two behind it wait in Redis, in order

    stop(doomed, signal.SIGKILL)
    time.sleep(4)  # past the broker heartbeat (3 s): the dead worker's message is due back
    start_workers(1, threads=2)

    done = [wait_final(db, j.id) for j in jobs]
    assert [j.state for j in done] == ["succeeded"] * 3
    first = done[0]
    assert first.attempts == 2
    assert first.finished_at <= min(j.started_at for j in done[1:]), (
        "the interrupted job was re-run only after the scheduled jobs queued behind it")


# The listing answers 503 once, and only when the test says so: `release` exists.
HELD_LISTING = '''
import time

def handle(request):
    if request.path != "/inventory/" or (request.root / "answered").exists():
        return None
    (request.root / "asked").touch()
    while not (request.root / "release").exists():
        time.sleep(0.05)
    (request.root / "answered").touch()
    return 503, "text/plain", b"down for a moment"
'''


def test_a_worker_killed_before_retrying_a_failed_attempt_has_it_retried_by_the_redelivery(
        db, site, start_workers, tmp_path):
    """A crawl child settles a transient failure itself (`failed`), then its worker retries
    the job (back to `queued`, a new message). A worker that dies in between left the job
    `failed` for good: its redelivered message found the job failed and was dropped. The
    redelivery now does what the dead worker did not: retry the job (or bury it)."""
    from jobs import service

    root = site_copy(tmp_path, {}, sitemaps=False)  # the listing is the only way in
    (root / "handler.py").write_text(HELD_LISTING)
    base = site(root)
    first, second = start_workers(2, threads=1)
    dealer = dealers_db.create(db, slug="flaky", name="Flaky", website_url=base + "/inventory/",
                               settings={"scrapy": {"RETRY_ENABLED": False}})
    job, _ = service.trigger(db, dealer.id, "crawl", "operator")
    wait_for((root / "asked").exists, what="the crawl to ask for its listing")
    running = jobs_db.get(db, job.id)
    pid = int(running.worker.split(":")[1])
    victim, survivor = (first, second) if pid in _family(first) else (second, first)
    os.killpg(victim.pid, signal.SIGSTOP)  # the worker, not its crawl child (own session)
    (root / "release").touch()
    failed = wait_for(lambda: (j := jobs_db.get(db, job.id)).state != "running" and j,
                      what="the crawl child to settle the attempt")
    assert failed.state == "failed" and failed.attempts == 1, failed
    stop(victim, signal.SIGKILL)  # dies before it could retry the job

    dropped = f"job {job.id} is failed"
    ended = wait_for(lambda: (j := jobs_db.get(db, job.id)).state == "succeeded" and j
                     or dropped in survivor.log.read_text(errors="replace"),
                     timeout=60, what="the redelivered message to be handled")
    assert ended is not True, "the redelivered message was dropped: the job stays failed"
    done = wait_final(db, job.id)
    assert done.state == "succeeded" and done.attempts == 2, done.errors
    assert int(done.worker.split(":")[1]) in _family(survivor)
    assert [e["attempt"] for e in done.errors] == [1]  # the failure it retried, recorded
    assert {r[0] for r in _stored(db, dealer.id, base)} == EXPECTED_VINS


@pytest.fixture
def own_redis(tmp_path):
    """A Redis server of this test's own that keeps nothing on disk (as the machine's does
    not), so the test may flush it as a restart would: (its URL, a client)."""
    import redis

    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        port = hole.getsockname()[1]
    with open(tmp_path / "redis.log", "ab") as out:
        server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                                  stdout=out, stderr=subprocess.STDOUT)
    client = redis.Redis(host="127.0.0.1", port=port)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            assert server.poll() is None, (tmp_path / "redis.log").read_text()
            return False

    try:
        wait_for(answers, timeout=10, what="our own redis-server")
        yield f"redis://127.0.0.1:{port}/0", client
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=10)


def test_a_job_left_failed_by_a_dead_worker_whose_message_redis_lost_is_retried_by_the_reaper(
        db, site, start_workers, own_redis, job_env, tmp_path):
    """The double fault: the worker dies between its attempt's failure and the retry, and
    its message is lost too (Redis restarted without persistence, here flushed while the
    worker holds the message). No redelivery comes, so the job stayed `failed` for good and
    its dealer got no retry. The reaper (every worker runs one) now retries it once the
    failure has waited FORECOURT_JOB_REAP_AFTER_S."""
    url, client = own_redis
    env = {"REDIS_URL": url, "FORECOURT_JOB_REAP_AFTER_S": "4"}
    root = site_copy(tmp_path, {}, sitemaps=False)  # the listing is the only way in
    (root / "handler.py").write_text(HELD_LISTING)
    base = site(root)
    first, second = start_workers(2, threads=1, **env)
    dealer = dealers_db.create(db, slug="orphan", name="Orphan",
                               website_url=base + "/inventory/",
                               settings={"scrapy": {"RETRY_ENABLED": False}})
    queued = subprocess.run([FORECOURT, "crawl", "orphan", "--queue"], env={**job_env, **env},
                            capture_output=True, text=True, timeout=60)
    assert queued.returncode == 0, queued.stdout + queued.stderr
    job = jobs_db.active(db, dealer.id)
    wait_for((root / "asked").exists, what="the crawl to ask for its listing")
    running = jobs_db.get(db, job.id)
    pid = int(running.worker.split(":")[1])
    victim, survivor = (first, second) if pid in _family(first) else (second, first)
    os.killpg(victim.pid, signal.SIGSTOP)  # the worker, not its crawl child (own session)
    client.flushall()  # Redis restarted empty: the message the worker holds is gone
    (root / "release").touch()
    failed = wait_for(lambda: (j := jobs_db.get(db, job.id)).state != "running" and j,
                      what="the crawl child to settle the attempt")
    assert failed.state == "failed" and failed.attempts == 1, failed
    stop(victim, signal.SIGKILL)  # dies before it could retry the job

    wait_for(lambda: jobs_db.get(db, job.id).state != "failed", timeout=60,
             what="the job to be retried (it stays failed: nothing acts on it)")
    done = wait_final(db, job.id)
    assert done.state == "succeeded" and done.attempts == 2, done.errors
    assert int(done.worker.split(":")[1]) in _family(survivor)
    assert [e["attempt"] for e in done.errors] == [1]  # the failure it retried, recorded
    assert f"job {job.id} was left failed" in survivor.log.read_text(errors="replace")
    assert {r[0] for r in _stored(db, dealer.id, base)} == EXPECTED_VINS


# One vehicle page answers only once the test says so (`release` exists), so the crawl is
# still running meanwhile, whatever the machine's speed.
HELD_PAGE = """
import time

def handle(request):
    if request.path != %r:
        return None
    (request.root / "asked").touch()
    while not (request.root / "release").exists():
        time.sleep(0.05)
    return None  # the page itself
"""


def _heartbeating(db) -> list[dict]:
    """The sessions whose last statement was a running job's heartbeat (queue_db.beat)."""
    return db.execute(
        "SELECT pid, application_name FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND query LIKE '%UPDATE jobs SET heartbeat_at%'"
    ).fetchall()


def test_a_crawl_whose_watch_loses_its_database_connection_runs_on_and_succeeds(
        db, site, start_workers, tmp_path):
    """The worker watches its crawl child (heartbeats, cancel checks) over a database
    connection. Cut by the server (a pooler's restart, pg_terminate_backend, a blip), the
    watch raised: the crawl child was killed and the job retried from the start, a long
    crawl's work thrown away. The watch now opens another connection and the crawl runs on."""
    from jobs import service

    root = site_copy(tmp_path, {})
    (root / "handler.py").write_text(HELD_PAGE % DETAIL_PATHS[0])
    base = site(root)
    start_workers(1, threads=1)
    dealer = dealers_db.create(db, slug="cut-watch", name="Cut watch",
                               website_url=base + "/inventory/")
    job, _ = service.trigger(db, dealer.id, "crawl", "operator")
    wait_for((root / "asked").exists, what="the crawl to ask for the held page")
    (watch,) = wait_for(lambda: _heartbeating(db), what="the watch's connection")
    db.execute("SELECT pg_terminate_backend(%s)", (watch["pid"],))
    wait_for(lambda: [s for s in _heartbeating(db) if s["pid"] != watch["pid"]],
             what="a heartbeat on another connection")
    (root / "release").touch()
    done = wait_final(db, job.id)
    assert done.state == "succeeded" and done.attempts == 1, done.errors
    assert done.errors == []
    assert {r[0] for r in _stored(db, dealer.id, base)} == EXPECTED_VINS
    # operators can find the watch's session (and tell it from the worker's own)
    assert watch["application_name"] == f"forecourt watch job {job.id}"
