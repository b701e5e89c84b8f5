"""Jobs through real `forecourt worker` processes, Redis and crawls of fixture sites."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from crawler.db import connect
from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from tests.jobs.conftest import (
    EXPECTED_VINS,
    FORECOURT,
    site_copy,
    slow_routes,
    wait_final,
    wait_for,
)

pytestmark = pytest.mark.integration


def _vins(db, dealer_id):
    return {r["vin"] for r in db.execute(
        "SELECT vin FROM vehicles WHERE dealership_id = %s AND status = 'active'",
        (dealer_id,)).fetchall()}


def test_job_goes_queued_running_succeeded_with_counters(db, site, shared_worker, job_env):
    """Through the CLI: `crawl --queue --wait` enqueues, follows and summarizes."""
    from jobs import service

    dealer = dealers_db.create(db, slug="maple", name="Maple",
                               website_url=site("generic") + "/inventory/")
    cli = subprocess.Popen([FORECOURT, "crawl", "maple", "--queue", "--wait"], env=job_env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job = wait_for(lambda: next(iter(jobs_db.list_for(db, dealer.id)), None), timeout=60,
                   interval=0.02, what="the CLI's job")
    seen = [job.state]
    again, created_again = service.trigger(db, dealer.id, "crawl", "api")
    assert not created_again and again.id == job.id
    while seen[-1] in ("queued", "running"):
        state = jobs_db.get(db, job.id).state
        if state != seen[-1]:
            seen.append(state)
        time.sleep(0.02)
    assert seen in (["queued", "running", "succeeded"], ["running", "succeeded"])
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, err
    assert f"job {job.id} queued" in out and "Run summary" in out and "succeeded" in out
    done = wait_final(db, job.id)
    assert done.state == "succeeded" and done.verdict == "healthy" and done.attempts == 1
    assert done.queue == "priority" and done.trigger == "operator" and done.message_id
    assert done.counters["added"] == 10 and done.counters["upserted"] == 10
    assert done.counters["rejected"] == 1 and done.counters["pages"] >= 12
    assert done.worker and done.started_at and done.finished_at and not done.errors
    assert _vins(db, dealer.id) == EXPECTED_VINS
    refused = subprocess.run([FORECOURT, "jobs", "cancel", str(job.id)], env=job_env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert refused.stderr.startswith(f"error: job {job.id} already ended succeeded")


def test_duplicate_triggers_racing_get_one_job(db, site, shared_worker):
    from jobs import service

    dealer = dealers_db.create(db, slug="race", name="Race",
                               website_url=site("generic") + "/inventory/")
    barrier = threading.Barrier(8)
    results = []

    def race():
        with connect() as conn:
            barrier.wait()
            results.append(service.trigger(conn, dealer.id, "crawl", "api"))

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({job.id for job, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert db.execute("SELECT count(*) AS n FROM jobs").fetchone()["n"] == 1
    service.cancel(db, results[0][0].id)
    assert wait_final(db, results[0][0].id).state == "cancelled"


def test_transient_failures_retry_until_success_or_dead_letter_and_replay(db, site,
                                                                           shared_worker,
                                                                           tmp_path):
    from jobs import service

    # Without sitemaps the listing is the only way in: a 5xx listing fails the crawl.
    # "flaky" fails twice, then works; "down" fails every attempt of its job (3, the test
    # maximum), then works for the replay. Both run at once on the worker's threads.
    no_retry = {"scrapy": {"RETRY_ENABLED": False}}
    flaky_site = site_copy(tmp_path, {"/inventory/": {"status": 503, "fail_times": 2}},
                           name="flaky", sitemaps=False)
    down_site = site_copy(tmp_path, {"/inventory/": {"status": 502, "fail_times": 3}},
                          name="down", sitemaps=False)
    flaky = dealers_db.create(db, slug="flaky", name="Flaky", settings=no_retry,
                              website_url=site(flaky_site) + "/inventory/")
    down = dealers_db.create(db, slug="down", name="Down", settings=no_retry,
                             website_url=site(down_site) + "/inventory/")
    flaky_job, _ = service.trigger(db, flaky.id, "crawl", "operator")
    down_job, _ = service.trigger(db, down.id, "crawl", "operator")

    done = wait_final(db, flaky_job.id)
    assert done.state == "succeeded", done.errors
    assert done.attempts == 3 and [e["attempt"] for e in done.errors] == [1, 2]
    assert all("HTTP 503" in e["error"] or "non-200" in e["error"] for e in done.errors)
    assert _vins(db, flaky.id) == EXPECTED_VINS
    assert done.counters["added"] == 10 and done.error is None

    dead = wait_final(db, down_job.id)
    assert dead.state == "dead" and dead.attempts == 3
    assert [e["attempt"] for e in dead.errors] == [1, 2, 3]
    assert [j.id for j in service.dead_letters(db, down.id)] == [down_job.id]
    assert service.dead_letters(db, flaky.id) == []
    replayed = service.replay(db, down_job.id)
    assert replayed.id != down_job.id and replayed.trigger == "retry"
    assert replayed.params["replay_of"] == down_job.id
    assert service.dead_letters(db, down.id) == []
    assert jobs_db.get(db, down_job.id).replayed_as == replayed.id
    done = wait_final(db, replayed.id)
    assert done.state == "succeeded" and done.attempts == 1
    assert _vins(db, down.id) == EXPECTED_VINS


def test_permanent_failure_fails_at_once_with_its_reason(db, site, shared_worker, tmp_path):
    from jobs import service

    root = site_copy(tmp_path, {}, sitemaps=False)
    dealer = dealers_db.create(db, slug="gone", name="Gone",
                               website_url=site(root) + "/no-such-inventory/")
    job, _ = service.trigger(db, dealer.id, "crawl", "operator")
    done = wait_final(db, job.id)
    assert done.state == "failed" and done.attempts == 1 and len(done.errors) == 1
    assert done.error and done.retry_at is None


def test_a_forbidden_dealer_url_fails_at_once_through_a_worker(db, shared_worker):
    """A dealer URL netguard refuses (a private address) is a misconfiguration: the worker
    ends the job failed after one attempt, as `forecourt crawl` run here does, instead of
    retrying it into a dead letter."""
    from jobs import service

    dealer = dealers_db.create(db, slug="private", name="Private",
                               website_url="http://10.0.0.1/inventory/")
    job, _ = service.trigger(db, dealer.id, "crawl", "operator")
    done = wait_final(db, job.id)
    assert done.state == "failed" and done.error_kind == "unsafe_url"
    assert done.attempts == 1 and len(done.errors) == 1 and done.retry_at is None
    assert "FORECOURT_ALLOW_PRIVATE_HOSTS" in done.error


def test_cancelled_job_stops_its_crawl_child(db, site, shared_worker, tmp_path):
    import psutil

    from jobs import service

    root = site_copy(tmp_path, slow_routes(20))
    dealer = dealers_db.create(db, slug="slow", name="Slow", website_url=site(root) + "/inventory/")
    job, _ = service.trigger(db, dealer.id, "crawl", "operator")

    def child():
        for proc in psutil.Process(shared_worker.pid).children(recursive=True):
            try:
                cmd = proc.cmdline()
            except psutil.NoSuchProcess:
                continue
            # `-m crawler.crawl_process JOB ATTEMPT`
            if "crawler.crawl_process" in cmd and \
                    cmd[cmd.index("crawler.crawl_process") + 1:][:1] == [str(job.id)]:
                return proc
        return None

    proc = wait_for(child, what="the crawl child")
    wait_for(lambda: jobs_db.get(db, job.id).phase == "crawling", what="the crawl to start")
    requested = service.cancel(db, job.id)
    assert requested.state in ("running", "cancelled")
    done = wait_final(db, job.id, timeout=20)
    assert done.state == "cancelled" and done.error_kind == "cancelled"
    wait_for(lambda: not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE, timeout=10,
             what="the crawl child to exit")
    assert service.cancel(db, job.id).state == "cancelled"  # idempotent


def test_purge_clears_a_dealers_dead_letters_only(db):
    from jobs import service

    a = dealers_db.create(db, slug="a", name="A", website_url="http://127.0.0.1:9/")
    b = dealers_db.create(db, slug="b", name="B", website_url="http://127.0.0.1:9/")
    dead = {}
    for dealer in (a, b):
        job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
        db.execute("UPDATE jobs SET state = 'dead' WHERE id = %s", (job.id,))
        dead[dealer.id] = job.id
    assert service.purge_dead(db, a.id) == 1
    assert [j.dealership_id for j in service.dead_letters(db)] == [b.id]
    assert jobs_db.get(db, dead[a.id]).state == "dead"  # the record stays as history


def test_feed_jobs_ingest_in_the_worker_and_a_missing_feed_fails_at_once(db, shared_worker,
                                                                         tmp_path):
    from crawler.config import PROJECT_ROOT
    from jobs import service

    feed = PROJECT_ROOT / "fixtures" / "feeds" / "harbor-city-auto.csv"
    dealer = dealers_db.create(db, slug="harbor", name="Harbor", feed_url=str(feed))
    job, _ = service.trigger(db, dealer.id, "feed", "api")
    assert job.queue == "priority"
    done = wait_final(db, job.id)
    assert done.state in ("succeeded", "partial") and done.attempts == 1, done.error
    assert done.counters["upserted"] == len(_vins(db, dealer.id)) > 0

    broken = dealers_db.create(db, slug="broken", name="Broken",
                               feed_url=str(tmp_path / "no-such-feed.csv"))
    job, _ = service.trigger(db, broken.id, "feed", "operator")
    done = wait_final(db, job.id)
    assert done.state == "failed" and done.attempts == 1 and len(done.errors) == 1


def test_a_worker_logs_each_record_once_with_secrets_redacted(db, site, shared_worker,
                                                              tmp_path):
    """Dramatiq's own handler printed every record a second time, as plain text and with
    the credentials of a feed URL in it."""
    from jobs import service

    root = tmp_path / "feeds"
    root.mkdir()
    secret = "s3cretpw-" + tmp_path.name[-6:]
    url = site(root).replace("http://", f"http://feeduser:{secret}@") + "/missing.csv"
    dealer = dealers_db.create(db, slug="creds", name="Creds", feed_url=url)
    job, _ = service.trigger(db, dealer.id, "feed", "operator")
    done = wait_final(db, job.id)
    assert done.state in ("failed", "dead")
    log = shared_worker.log.read_text(errors="replace")
    requests = [line for line in log.splitlines()
                if "HTTP Request: GET" in line and "missing.csv" in line]
    assert requests, log[-3000:]
    assert secret not in log and all("feeduser:***@" in line for line in requests)
    # one line per request: a 404 is not retried, so one request, logged once
    assert len(requests) == 1, requests
    # nor in the job's record, nor where operators read it
    assert "feeduser:***@" in done.error and secret not in str(done.errors)
    shown = subprocess.run([FORECOURT, "jobs", "show", str(job.id)], capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0 and "feeduser:***@" in shown.stdout
    assert secret not in shown.stdout


def test_every_worker_line_of_a_job_names_the_job_and_its_dealer(db, shared_worker):
    """`grep dealer=harbor-logs` (or job_id=N) in a worker's log found the job's lines by id
    only: its dealer was named nowhere, so on-call had to look the slug up first."""
    from crawler.config import PROJECT_ROOT
    from jobs import service

    feed = PROJECT_ROOT / "fixtures" / "feeds" / "harbor-city-auto.csv"
    dealer = dealers_db.create(db, slug="harbor-logs", name="Harbor", feed_url=str(feed))
    job, _ = service.trigger(db, dealer.id, "feed", "operator")
    wait_final(db, job.id)

    def job_lines():  # the "ended" line follows the job's end in the database
        lines = [ln for ln in shared_worker.log.read_text(errors="replace").splitlines()
                 if f"job {job.id} " in ln]
        return lines if any("ended" in ln for ln in lines) else None

    lines = wait_for(job_lines, timeout=10, what="the job's ended line")
    assert any("started" in ln for ln in lines) and any("ended" in ln for ln in lines), lines
    assert all(f"job_id={job.id}" in ln and "dealer=harbor-logs" in ln for ln in lines), lines
