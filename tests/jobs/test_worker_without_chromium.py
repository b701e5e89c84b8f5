"""A worker on a machine without Chromium: it starts (it may serve only plain-HTTP dealers)
with one warning line naming FORECOURT_CHROMIUM_PATH and the fix. A JavaScript-site crawl it
takes goes back on its queue for a worker that has Chromium when one is alive there
(a mixed fleet); when none is, it fails once, permanently, with that fix: never retried
into a dead letter, since every attempt would meet the same missing browser."""

from __future__ import annotations

import signal
import time

import pytest

from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from tests.jobs.conftest import (
    WORKER_READY,
    _ready,
    _spawn,
    end_now,
    site_copy,
    slow_routes,
    stop,
    wait_final,
    wait_for,
)

FIX = "apt-get install -y chromium, or set FORECOURT_CHROMIUM_PATH"
NONE_ALIVE = "no live worker that has Chromium takes queue priority"


@pytest.fixture
def no_live_renderer(forecourt_env):
    """No worker with Chromium advertised in the session's namespace (one killed by an
    earlier test would be, for a few seconds)."""
    import redis

    from crawler.config import get_settings
    from crawler.db import redis_url

    client = redis.Redis.from_url(redis_url())
    namespace = get_settings().redis_namespace
    client.delete(*(f"{namespace}:renderer:{q}" for q in ("priority", "scheduled")))
    client.close()


def test_a_worker_without_chromium_warns_once_and_fails_javascript_crawls_permanently(
        db, site, job_env, tmp_path, no_live_renderer):
    from jobs import service

    env = {**job_env, "FORECOURT_CHROMIUM_PATH": "/nonexistent/chromium"}
    proc = _spawn(["worker", "--processes", "1", "--threads", "1"], env,
                  tmp_path / "worker.log")
    try:
        _ready(proc, WORKER_READY)
        dealer = dealers_db.create(db, slug="dusk", name="Dusk Motors", platform="javascript",
                                   website_url=site("javascript") + "/inventory/")
        job, _ = service.trigger(db, dealer.id, "crawl", "operator")
        done = wait_final(db, job.id, timeout=90)
    finally:
        stop(proc, signal.SIGKILL)
    log = proc.log.read_text(errors="replace")
    warnings = [ln for ln in log.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1, log[-3000:]
    assert "/nonexistent/chromium" in warnings[0] and FIX in warnings[0]
    assert "Traceback" not in log.split(WORKER_READY)[0]
    # one attempt, failed for good (FORECOURT_JOB_MAX_ATTEMPTS is 3 here: not dead)
    assert done.state == "failed" and done.attempts == 1 and done.retry_at is None
    assert "no Chromium for JavaScript sites at /nonexistent/chromium" in done.error
    assert FIX in done.error
    # and the worker says in one line why it was not handed to another worker
    assert len([ln for ln in log.splitlines() if NONE_ALIVE in ln]) == 1, log[-3000:]


def _without_chromium(job_env, tmp_path) -> dict:
    """A worker environment whose Chromium is a file it may not execute."""
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o644)
    return {**job_env, "FORECOURT_CHROMIUM_PATH": str(fake)}


def _javascript_dealer(db, site, slug: str):
    return dealers_db.create(db, slug=slug, name=slug.title(), platform="javascript",
                             website_url=site("javascript") + "/inventory/")


def _message_in_line(job) -> bool:
    """Whether the job's current message waits in its queue (delayed or not)."""
    from jobs.broker import get_broker

    broker = get_broker()  # (a hash of messages by Redis's own id per queue)
    return any(job.message_id.encode() in m
               for name in (f"{job.queue}.msgs", f"{job.queue}.DQ.msgs")
               for m in broker.client.hvals(f"{broker.namespace}:{name}"))


def _first_attempt_over(db, job_id: int):
    """The job once its first attempt has ended and its worker has acted on it (a failure
    that holds, or the job back in line)."""
    def over():
        job = jobs_db.get(db, job_id)
        if not job.errors and job.state != "succeeded" or job.state == "running":
            return None
        if job.state == "failed":  # its worker may be about to act on it
            time.sleep(1)
            again = jobs_db.get(db, job_id)
            return again if again.updated_at == job.updated_at else None
        return job

    return wait_for(over, timeout=90, what=f"job {job_id}'s first attempt")


def test_a_javascript_crawl_on_a_worker_without_chromium_goes_to_a_live_worker_that_has_it(
        db, site, job_env, tmp_path):
    """A mixed fleet: the only idle worker has no Chromium and takes the crawl while the one
    that has Chromium is busy. The crawl goes back on its queue (not failed), and the worker
    with Chromium runs it to success once free."""
    from jobs import service

    slow = site(site_copy(tmp_path, slow_routes(120), name="slow"))
    able = _spawn(["worker", "--processes", "1", "--threads", "1"], job_env,
                  tmp_path / "able.log")
    unable = None
    try:
        _ready(able, WORKER_READY)
        busy = dealers_db.create(db, slug="busy", name="Busy", website_url=slow + "/inventory/")
        hold, _ = service.trigger(db, busy.id, "crawl", "operator")
        wait_for(lambda: jobs_db.get(db, hold.id).state == "running",
                 what="the worker with Chromium busy")
        unable = _spawn(["worker", "--processes", "1", "--threads", "1"],
                        _without_chromium(job_env, tmp_path), tmp_path / "unable.log")
        _ready(unable, WORKER_READY)

        dealer = _javascript_dealer(db, site, "dusk")
        job, _ = service.trigger(db, dealer.id, "crawl", "operator")
        first = _first_attempt_over(db, job.id)
        assert first.state == "queued", (
            f"{first.state}: {first.error} (a worker with Chromium was alive)")
        assert first.errors[0]["kind"] == "permanent:NoChromium"

        # the hand-off's message is in Redis (a kill between the job's requeue and the send
        # would leave it to the reaper's re-send, an hour later)
        wait_for(lambda: _message_in_line(jobs_db.get(db, job.id)),
                 what="the hand-off's message in Redis")
        stop(unable, signal.SIGKILL)  # from now on only the worker with Chromium takes it
        end_now(db, [hold])  # ... and it is free
        done = wait_final(db, job.id, timeout=120)
    finally:
        for proc in (able, unable):
            if proc is not None:
                stop(proc, signal.SIGKILL)
    able_log = able.log.read_text(errors="replace")
    unable_log = unable.log.read_text(errors="replace")
    assert done.state == "succeeded", (done.error, able_log[-3000:])
    assert f"started by {done.worker}" in able_log  # its last attempt: the able worker's
    handed = [ln for ln in unable_log.splitlines() if "handed on" in ln]
    assert handed and "needs Chromium" in handed[0], unable_log[-3000:]
    # bounces are not retries: the job kept its whole retry budget for real failures
    assert done.retry_at is None


def test_a_javascript_crawl_fails_permanently_when_no_live_worker_with_chromium_takes_its_queue(
        db, site, job_env, tmp_path, no_live_renderer):
    """A worker with Chromium that consumes only the scheduled queue cannot run an operator
    crawl: the worker without Chromium fails it at once, permanently, as when none is alive,
    and says so in one line."""
    from jobs import service

    able = _spawn(["worker", "--processes", "1", "--threads", "1", "--queue", "scheduled"],
                  job_env, tmp_path / "able.log")
    unable = _spawn(["worker", "--processes", "1", "--threads", "1"],
                    _without_chromium(job_env, tmp_path), tmp_path / "unable.log")
    try:
        _ready(able, WORKER_READY)
        _ready(unable, WORKER_READY)
        dealer = _javascript_dealer(db, site, "dawn")
        job, _ = service.trigger(db, dealer.id, "crawl", "operator")
        done = wait_final(db, job.id, timeout=90)
    finally:
        stop(able, signal.SIGKILL)
        stop(unable, signal.SIGKILL)
    log = unable.log.read_text(errors="replace")
    assert done.state == "failed" and done.attempts == 1 and done.retry_at is None
    assert "Chromium for JavaScript sites at" in done.error and FIX in done.error
    assert len([ln for ln in log.splitlines() if NONE_ALIVE in ln]) == 1, log[-3000:]


def test_a_chromium_path_that_is_not_executable_is_warned_about(tmp_path, monkeypatch):
    from crawler import preflight
    from crawler.config import reset_settings

    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o644)
    monkeypatch.setenv("FORECOURT_CHROMIUM_PATH", str(fake))
    reset_settings()
    try:
        warning = preflight.chromium()
        fake.chmod(0o755)
        fine = preflight.chromium()
    finally:
        monkeypatch.undo()
        reset_settings()
    assert warning is not None and str(fake) in warning and "not executable" in warning
    assert "FORECOURT_CHROMIUM_PATH" in warning
    assert fine is None


def test_a_crawl_failed_for_want_of_chromium_with_none_alive_has_ended_at_once(
        db, no_live_renderer, caplog):
    """The worker without Chromium found no live worker that has it and left the crawl
    failed: that failure is final. A follower (`crawl --queue --wait`, `jobs show --follow`)
    reports it at once, not after FORECOURT_JOB_STALE_AFTER_S as if its worker had died
    before acting; and a second delivery of its message (the reaper's re-send under the same
    id) does not take it for a failure its worker left unhandled and hand it on again."""
    import logging

    from crawler.cli.jobs import ended
    from jobs import actors, outcome

    dealer = dealers_db.create(db, slug="dusk", name="Dusk", platform="javascript",
                               website_url="http://127.0.0.1:9/inventory/")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
    jobs_db.set_message(db, job.id, "priority", "message-1")
    assert jobs_db.claim(db, job.id, "unable:1:T", 60, "message-1") is not None
    failed = jobs_db.finish(db, job.id, "failed", counters={}, error_kind=outcome.NO_CHROMIUM,
                            error=f"listing page http://127.0.0.1:9/inventory/ failed: no "
                                  f"Chromium for JavaScript sites ({FIX})")
    with caplog.at_level(logging.INFO, logger="forecourt.jobs"):
        settled = actors.after_failure(db, failed, outcome.classify_settled(failed))
        assert settled.state == "failed"
        assert ended(jobs_db.get(db, job.id), {}), "a follower waits on a failure that holds"
        caplog.clear()
        assert actors._claim(db, job.id, "other:2:T", "message-1") is None
    assert not [r for r in caplog.records if "needs Chromium" in r.getMessage()
                or "left failed" in r.getMessage()], [r.getMessage() for r in caplog.records]
    done = jobs_db.get(db, job.id)
    assert done.state == "failed" and FIX in done.error and done.attempts == 1


def test_a_worker_with_chromium_that_is_stopping_no_longer_says_it_takes_crawls(
        db, site, job_env, tmp_path, no_live_renderer):
    """A worker told to stop (SIGTERM) takes no new message while it finishes its running
    crawl, which may take up to the crawl time limit. It went on saying in Redis that it
    renders pages for its queues all that while, so workers without Chromium handed
    JavaScript crawls on to it five times and then failed them ("never taken by a worker
    that has it"). Its key now expires within renderers.TTL_S of the stop."""
    import os

    from jobs import renderers, service

    slow = site(site_copy(tmp_path, slow_routes(120), name="slow"))
    able = _spawn(["worker", "--processes", "1", "--threads", "1"], job_env,
                  tmp_path / "able.log")
    hold = None
    try:
        _ready(able, WORKER_READY)
        wait_for(lambda: renderers.alive("priority"), what="the worker to advertise Chromium")
        busy = dealers_db.create(db, slug="busy", name="Busy", website_url=slow + "/inventory/")
        hold, _ = service.trigger(db, busy.id, "crawl", "operator")
        wait_for(lambda: jobs_db.get(db, hold.id).state == "running",
                 what="the worker with Chromium busy")
        # as `kill <pid>` of `forecourt worker` does: it finishes its crawl first, taking
        # nothing new (a second SIGTERM, to its worker processes too, would kill them)
        os.kill(able.pid, signal.SIGTERM)
        wait_for(lambda: renderers.alive("priority") is None, timeout=renderers.TTL_S * 3,
                 what="the stopping worker's Chromium key to expire")
        assert able.poll() is None, "the worker stopped before its crawl ended"
        assert jobs_db.get(db, hold.id).state == "running"
    finally:
        if hold is not None:
            end_now(db, [hold])  # the worker stops its crawl (while it lives to hear it)
        stop(able, signal.SIGKILL)
