"""A worker on a machine without Chromium: it starts (it may serve only plain-HTTP dealers)
with one warning line naming FORECOURT_CHROMIUM_PATH and the fix. In a mixed fleet a crawl
that must render pages waits on the render queue (jobs/queues.py) for a worker that has
Chromium when one is alive there, however long it is busy; when none is, it fails once,
permanently, with that fix: never retried into a dead letter, since every attempt would meet
the same missing browser."""

from __future__ import annotations

import signal
import time

import pytest

from crawler.db import dealers as dealers_db
from crawler.db import job_queue as queue_db
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
    from jobs import queues

    client.delete(*(f"{namespace}:{kind}:{q}" for q in queues.ALL  # render queues too
                    for kind in ("renderer", "renderers", "renderer-seen")))
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


def _message_in(job, queue: str | None = None) -> bool:
    """Whether the job's current message waits in `queue` (default: the job's recorded
    queue), delayed or not."""
    from jobs.broker import get_broker

    broker = get_broker()  # (a hash of messages by Redis's own id per queue)
    queue = queue or job.queue
    return any(job.message_id.encode() in m
               for name in (f"{queue}.msgs", f"{queue}.DQ.msgs")
               for m in broker.client.hvals(f"{broker.namespace}:{name}"))


def _busy_with_chromium(db, site, job_env, tmp_path):
    """A worker that has Chromium, busy with a crawl of slow pages (two minutes: far longer
    than the hand-offs' backoffs add up to): (the worker, its crawl's job)."""
    from jobs import renderers, service

    slow = site(site_copy(tmp_path, slow_routes(120), name="slow"))
    able = _spawn(["worker", "--processes", "1", "--threads", "1"], job_env,
                  tmp_path / "able.log")
    try:
        _ready(able, WORKER_READY)
        wait_for(lambda: renderers.alive("priority"), what="the worker to advertise Chromium")
        busy = dealers_db.create(db, slug="busy", name="Busy", website_url=slow + "/inventory/")
        hold, _ = service.trigger(db, busy.id, "crawl", "operator")
        wait_for(lambda: jobs_db.get(db, hold.id).state == "running",
                 what="the worker with Chromium busy")
    except BaseException:
        stop(able, signal.SIGKILL)
        raise
    return able, hold


def _busy_able_worker(db, site, job_env, tmp_path):
    """A worker that has Chromium, busy (_busy_with_chromium), and an idle worker without."""
    able, hold = _busy_with_chromium(db, site, job_env, tmp_path)
    unable = _spawn(["worker", "--processes", "1", "--threads", "1"],
                    _without_chromium(job_env, tmp_path), tmp_path / "unable.log")
    _ready(unable, WORKER_READY)
    return able, unable, hold


def _waiting_or_over(db, job_id: int, queue: str):
    """The job once its message waits on `queue`, or once it has ended."""
    from crawler.models import FINAL_STATES

    def seen():
        job = jobs_db.get(db, job_id)
        if job.state in FINAL_STATES and job.state != "failed":
            return job
        if job.state == "failed":  # its worker may be about to act on it
            time.sleep(1)
            again = jobs_db.get(db, job_id)
            return again if again.updated_at == job.updated_at else None
        return job if job.state == "queued" and job.message_id and _message_in(job, queue) \
            else None

    return wait_for(seen, timeout=90, what=f"job {job_id} on {queue}, or its end")


def test_a_crawl_that_must_render_waits_for_a_busy_worker_with_chromium_and_runs_there(
        db, site, job_env, tmp_path):
    """A mixed fleet whose worker with Chromium is busy with a long crawl. A crawl that
    turns out to need the browser (its site renders its listings with scripts; its dealer's
    platform does not say so) starts on the idle worker without Chromium, and goes to the
    render queue: it waits there, not counted as a retry and not handed back and forth,
    while that worker runs other work, and the worker with Chromium runs it once free. It
    was handed on through its own queue, with backoff, and failed after 5 hand-offs ("never
    taken by a worker that has it") although a worker with Chromium was alive."""
    from jobs import outcome, service

    plain = site(site_copy(tmp_path, {}, name="plain"))
    able = unable = None
    try:
        able, unable, hold = _busy_able_worker(db, site, job_env, tmp_path)
        dealer = dealers_db.create(db, slug="dusk", name="Dusk",
                                   website_url=site("javascript") + "/inventory/")
        job, _ = service.trigger(db, dealer.id, "crawl", "operator")
        waiting = _waiting_or_over(db, job.id, "priority.render")
        assert waiting.state == "queued", f"{waiting.state}: {waiting.error}"
        assert [e["kind"] for e in waiting.errors] == ["permanent:NoChromium"]

        # the worker without Chromium is free meanwhile: it runs a plain crawl to its end
        # and leaves the waiting crawl alone
        other = dealers_db.create(db, slug="noon", name="Noon", website_url=plain + "/inventory/")
        ran, _ = service.trigger(db, other.id, "crawl", "operator")
        ran = wait_final(db, ran.id, timeout=90)
        assert ran.state == "succeeded", ran.error
        assert f"started by {ran.worker}" in unable.log.read_text(errors="replace")
        still = jobs_db.get(db, job.id)
        assert still.state == "queued" and still.attempts == 1, (still.state, still.errors)
        assert _message_in(still, "priority.render")

        end_now(db, [hold])  # the worker with Chromium is free
        done = wait_final(db, job.id, timeout=120)
    finally:
        for proc in (able, unable):
            if proc is not None:
                stop(proc, signal.SIGKILL)
    able_log = able.log.read_text(errors="replace")
    unable_log = unable.log.read_text(errors="replace")
    # rendered and read there (the generic spider finds no detail page of this site: partial)
    assert done.state in ("succeeded", "partial"), (done.error, able_log[-3000:])
    assert "Chromium" not in (done.error or "") and done.counters.get("valid"), done.counters
    assert done.attempts == 2 and f"started by {done.worker}" in able_log
    # the wait is not a retry: the job kept its whole retry budget for real failures
    assert outcome.retries_used(done) == 1 and done.retry_at is None
    waits = [ln for ln in unable_log.splitlines() if "needs Chromium" in ln]
    assert len(waits) == 1 and "priority.render" in waits[0], unable_log[-3000:]


def test_a_javascript_dealer_s_crawl_goes_straight_to_a_worker_with_chromium(
        db, site, job_env, tmp_path):
    """A crawl whose dealer's platform renders every listing page (javascript) is known to
    need Chromium before it starts: while a worker that has it is alive it goes to the
    render queue at once, so the idle worker without Chromium never starts it (it used to
    start it, fail it for want of Chromium and hand it on)."""
    from jobs import service

    able = unable = None
    try:
        able, unable, hold = _busy_able_worker(db, site, job_env, tmp_path)
        dealer = _javascript_dealer(db, site, "dawn")
        job, _ = service.trigger(db, dealer.id, "crawl", "operator")
        waiting = wait_for(lambda: (j := jobs_db.get(db, job.id)).attempts and j
                           or (_message_in(j, "priority.render") and j),
                           what="the crawl on the render queue, or started")
        assert waiting.attempts == 0 and waiting.state == "queued", (waiting.state,
                                                                   waiting.error)
        end_now(db, [hold])
        done = wait_final(db, job.id, timeout=120)
    finally:
        for proc in (able, unable):
            if proc is not None:
                stop(proc, signal.SIGKILL)
    able_log = able.log.read_text(errors="replace")
    assert done.state == "succeeded", (done.error, able_log[-3000:])
    assert done.attempts == 1 and not done.errors
    assert f"started by {done.worker}" in able_log
    assert "needs Chromium" not in unable.log.read_text(errors="replace")


def _failed_for_want_of_chromium(db, slug: str = "dusk"):
    """A queued crawl whose first attempt failed for want of Chromium (as its worker left
    it, before acting on it)."""
    from jobs import outcome

    dealer = dealers_db.create(db, slug=slug, name=slug.title(),
                               website_url="http://127.0.0.1:9/inventory/")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
    queue_db.set_message(db, job.id, "priority", "message-1")
    assert queue_db.claim(db, job.id, "unable:1:T", 60, "message-1") is not None
    return jobs_db.finish(db, job.id, "failed", counters={}, error_kind=outcome.NO_CHROMIUM,
                          error=f"listing page http://127.0.0.1:9/inventory/ failed: no "
                                f"Chromium for JavaScript sites ({FIX})")


def _advertise(queue: str) -> None:
    """Say in Redis, as a live worker that has Chromium does, that one (this process)
    takes `queue` (and took it lately)."""
    from jobs import renderers

    renderers.advertise([queue])


def test_a_crawl_waiting_for_chromium_is_re_sent_where_a_worker_with_chromium_takes_it(
        db, no_live_renderer):
    """The hand-off puts the crawl's message on the render queue at once (no backoff: it
    waits in line there), and the reaper's re-send of a lost message puts it there again
    under the same id while a worker with Chromium takes that queue (or did lately); with
    none left it goes back on its own queue, where a worker without Chromium fails it in one
    line and one that has it (of any release) runs it."""
    from jobs import failures, outcome, routing

    failed = _failed_for_want_of_chromium(db)
    _advertise("priority.render")
    failures.after_failure(db, failed, outcome.classify_settled(failed))
    waiting = jobs_db.get(db, failed.id)
    assert waiting.state == "queued" and waiting.queue == "priority"
    assert _message_in(waiting, "priority.render") and not _message_in(waiting, "priority")
    routing.send(db, waiting, same_id=True)  # the reaper's re-send
    again = jobs_db.get(db, waiting.id)
    assert again.message_id == waiting.message_id and _message_in(again, "priority.render")

    from jobs import renderers

    renderers._client().delete(renderers.members_key("priority.render"))
    routing.send(db, again, same_id=True)  # none alive, one seen lately: it is waited for
    assert _message_in(jobs_db.get(db, again.id), "priority.render")
    renderers._client().delete(renderers.seen_key("priority.render"))
    routing.send(db, again, same_id=True)
    assert _message_in(jobs_db.get(db, again.id), "priority")


def test_a_crawl_needing_chromium_is_handed_on_the_old_way_to_an_older_release_s_worker(
        db, no_live_renderer, caplog):
    """A rolling deploy: the only live worker with Chromium is of the release before, which
    takes `priority` but knows no render queue. The crawl is handed on through its own
    queue, with backoff, a bounded number of times, as that release did."""
    import logging

    from jobs import failures, outcome

    failed = _failed_for_want_of_chromium(db)
    _advertise("priority")
    with caplog.at_level(logging.INFO, logger="forecourt.jobs"):
        failures.after_failure(db, failed, outcome.classify_settled(failed))
    handed = jobs_db.get(db, failed.id)
    assert handed.state == "queued" and handed.retry_at is not None
    assert _message_in(handed, "priority") and not _message_in(handed, "priority.render")
    assert [r for r in caplog.records if "handed on (1 of 5)" in r.getMessage()]


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


def test_a_worker_consumes_the_render_queues_only_if_it_has_chromium():
    """jobs/queues.py: a worker that has Chromium takes each of its queues' render queue
    too; one without takes none, named or not; and which dealers' crawls are known to
    need it before they start."""
    from jobs.queues import consumed
    from spiders import registry

    assert consumed(None, renders=True) == ["priority", "scheduled", "priority.render",
                                            "scheduled.render"]
    assert consumed(None, renders=False) == ["priority", "scheduled"]
    assert consumed(["scheduled"], renders=True) == ["scheduled", "scheduled.render"]
    assert consumed(["priority", "priority.render"], renders=False) == ["priority"]
    assert consumed(["priority.render"], renders=False) == []
    assert registry.renders("javascript") and not registry.renders("generic")
    assert registry.RENDERING <= set(registry.platforms())


def test_a_worker_without_chromium_on_render_queues_only_is_refused_in_one_line(job_env):
    """It would take no job at all: refused at once, with the fix."""
    import subprocess

    from tests.jobs.conftest import FORECOURT

    result = subprocess.run([FORECOURT, "worker", "-Q", "priority.render"],
                            env={**job_env, "FORECOURT_CHROMIUM_PATH": "/nonexistent/chromium"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "priority.render is for workers that have Chromium" in lines[0]
    assert FIX in lines[0]


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
    from jobs import execution, failures, outcome

    dealer = dealers_db.create(db, slug="dusk", name="Dusk", platform="javascript",
                               website_url="http://127.0.0.1:9/inventory/")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
    queue_db.set_message(db, job.id, "priority", "message-1")
    assert queue_db.claim(db, job.id, "unable:1:T", 60, "message-1") is not None
    failed = jobs_db.finish(db, job.id, "failed", counters={}, error_kind=outcome.NO_CHROMIUM,
                            error=f"listing page http://127.0.0.1:9/inventory/ failed: no "
                                  f"Chromium for JavaScript sites ({FIX})")
    with caplog.at_level(logging.INFO, logger="forecourt.jobs"):
        settled = failures.after_failure(db, failed, outcome.classify_settled(failed))
        assert settled.state == "failed"
        assert ended(jobs_db.get(db, job.id), {}), "a follower waits on a failure that holds"
        caplog.clear()
        assert execution._claim(db, job.id, "other:2:T", "message-1") is None
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

    from jobs import renderers

    able, hold = _busy_with_chromium(db, site, job_env, tmp_path)
    try:
        # as `kill <pid>` of `forecourt worker` does: it finishes its crawl first, taking
        # nothing new (a second SIGTERM, to its worker processes too, would kill them)
        os.kill(able.pid, signal.SIGTERM)
        wait_for(lambda: renderers.alive("priority") is None, timeout=renderers.TTL_S * 3,
                 what="the stopping worker's Chromium key to expire")
        assert able.poll() is None, "the worker stopped before its crawl ended"
        assert jobs_db.get(db, hold.id).state == "running"
    finally:
        end_now(db, [hold])  # the worker stops its crawl (while it lives to hear it)
        stop(able, signal.SIGKILL)


# A short bound for the tests that stop the last worker with Chromium: no worker with Chromium
# advertised a render queue for this long, and the crawls waiting there go back to their own
# queue. The reaper passes every quarter of FORECOURT_JOB_REAP_AFTER_S.
RENDERER_GONE = {"FORECOURT_JOB_RENDERER_GONE_AFTER_S": "15", "FORECOURT_JOB_REAP_AFTER_S": "20"}


def test_a_crawl_waiting_for_chromium_fails_in_one_line_soon_after_the_last_worker_with_it_dies(
        db, site, job_env, tmp_path, no_live_renderer):
    """A JavaScript dealer's crawl waits on priority.render behind the only worker with
    Chromium, busy; that worker dies (-9). The crawl waited on for the reaper's re-send of
    lost messages (FORECOURT_JOB_RESEND_AFTER_S, an hour) before it failed. Now a reaper sees
    that no worker with Chromium has advertised the render queue for
    FORECOURT_JOB_RENDERER_GONE_AFTER_S and sends the crawl back to its own queue, where the
    worker without Chromium fails it in one line, as when none was alive to begin with."""
    from jobs import service

    env = {**job_env, **RENDERER_GONE}
    slow = site(site_copy(tmp_path, slow_routes(120), name="slow"))
    able = _spawn(["worker", "--processes", "1", "--threads", "1"], env, tmp_path / "able.log")
    # two threads: the busy crawl, redelivered to it once the other worker died, holds one
    unable = _spawn(["worker", "--processes", "1", "--threads", "2"],
                    {**_without_chromium(job_env, tmp_path), **RENDERER_GONE},
                    tmp_path / "unable.log")
    try:
        _ready(able, WORKER_READY)
        _ready(unable, WORKER_READY)
        from jobs import renderers

        wait_for(lambda: renderers.alive("priority.render"),
                 what="the worker to advertise Chromium")
        busy = dealers_db.create(db, slug="busy", name="Busy", website_url=slow + "/inventory/")
        hold, _ = service.trigger(db, busy.id, "crawl", "operator")
        wait_for(lambda: jobs_db.get(db, hold.id).state == "running",
                 what="the worker with Chromium busy")
        dealer = _javascript_dealer(db, site, "dawn")
        job, _ = service.trigger(db, dealer.id, "crawl", "operator")
        waiting = wait_for(lambda: (j := jobs_db.get(db, job.id)).attempts and j
                           or (_message_in(j, "priority.render") and j),
                           what="the crawl on the render queue, or started")
        assert waiting.attempts == 0 and waiting.state == "queued"
        stop(able, signal.SIGKILL)  # the last worker with Chromium dies
        done = wait_final(db, job.id, timeout=150)
    finally:
        stop(able, signal.SIGKILL)
        stop(unable, signal.SIGKILL)
    log = unable.log.read_text(errors="replace")
    assert done.state == "failed" and done.attempts == 1 and done.retry_at is None, done.error
    assert "Chromium for JavaScript sites at" in done.error and FIX in done.error
    assert len([ln for ln in log.splitlines() if NONE_ALIVE in ln]) == 1, log[-3000:]
    moved = [ln for ln in log.splitlines() if "no worker with Chromium has taken" in ln]
    assert len(moved) == 1 and f"job {job.id} " in moved[0], log[-3000:]


def test_a_crawl_waiting_for_chromium_goes_back_to_its_queue_only_once_its_renderers_are_gone(
        db, no_live_renderer):
    """The reaper leaves a crawl on its render queue while a worker with Chromium took that
    queue lately (its key expired, but a restarting worker comes back within
    FORECOURT_JOB_RENDERER_GONE_AFTER_S), and sends it back to its own queue, under the same
    message id, once none did for that long: once, whichever reaper (a second pass, another
    process) comes after."""
    from crawler.config import get_settings
    from jobs import failures, outcome, reaper, renderers

    failed = _failed_for_want_of_chromium(db)
    _advertise("priority.render")
    failures.after_failure(db, failed, outcome.classify_settled(failed))
    waiting = jobs_db.get(db, failed.id)
    assert waiting.state == "queued" and _message_in(waiting, "priority.render")

    renderers._client().delete(renderers.members_key("priority.render"))  # not alive this moment
    assert reaper.reap(db)["unrendered"] == []
    still = jobs_db.get(db, waiting.id)
    assert still.updated_at == waiting.updated_at and not _message_in(still, "priority")

    renderers._client().delete(
        f"{get_settings().redis_namespace}:renderer-seen:priority.render")  # gone for long
    assert reaper.reap(db)["unrendered"] == [waiting.id]
    moved = jobs_db.get(db, waiting.id)
    assert moved.state == "queued" and moved.message_id == waiting.message_id
    assert _message_in(moved, "priority")
    assert reaper.reap(db)["unrendered"] == []  # not again


LOST = "lost its Chromium"
BACK = "Chromium is back"


def _losing_chromium(job_env, tmp_path, name: str, extra: dict | None = None):
    """A worker whose Chromium is a symlink to the system one (`unlink` it to take its
    Chromium away while it runs): (the worker, the symlink)."""
    import os

    chromium = tmp_path / f"{name}-chromium"
    os.symlink("/usr/bin/chromium", chromium)
    env = {**job_env, **(extra or {}), "FORECOURT_CHROMIUM_PATH": str(chromium)}
    worker = _spawn(["worker", "--processes", "1", "--threads", "1"], env,
                    tmp_path / f"{name}.log")
    _ready(worker, WORKER_READY)
    return worker, chromium


def _lines(proc, text: str) -> list[str]:
    return [ln for ln in proc.log.read_text(errors="replace").splitlines() if text in ln]


def test_a_worker_that_loses_chromium_stops_taking_render_crawls_and_another_runs_them(
        db, site, job_env, tmp_path, no_live_renderer):
    """Two workers with Chromium; one loses it while it runs (its package removed). It took
    every render-queue message that reached it, put it back for 15 s with a warning, again and
    again, and kept its place in Redis as a renderer until restarted. Now it says once, with
    the fix, that it lost Chromium, leaves the render queues at once (Redis names only the
    other worker there) and takes no render message, while it runs plain crawls; the crawl
    waiting there runs on the other worker once that one is free, never failed."""
    from jobs import renderers, service

    plain = site(site_copy(tmp_path, {}, name="plain"))
    able = losing = None
    try:
        able, hold = _busy_with_chromium(db, site, job_env, tmp_path)
        losing, chromium = _losing_chromium(job_env, tmp_path, "losing")
        wait_for(lambda: len(renderers.living("priority.render")) == 2,
                 what="both workers to say they render pages")
        chromium.unlink()  # Chromium removed under the running worker
        wait_for(lambda: _lines(losing, LOST), what="the worker to say it lost Chromium")
        able_name = jobs_db.get(db, hold.id).worker.rsplit(":", 1)[0]  # host:pid
        assert renderers.living("priority.render") == [able_name]
        assert renderers.living("scheduled.render") == [able_name]

        dealer = _javascript_dealer(db, site, "dawn")
        job, _ = service.trigger(db, dealer.id, "crawl", "operator")
        waiting = jobs_db.get(db, job.id)
        assert waiting.state == "queued" and _message_in(waiting, "priority.render")
        # the worker that lost Chromium is free meanwhile: it runs a plain crawl to its end
        # (its consumers polling all the while) and leaves the waiting crawl alone
        other = dealers_db.create(db, slug="noon", name="Noon", website_url=plain + "/inventory/")
        ran, _ = service.trigger(db, other.id, "crawl", "operator")
        ran = wait_final(db, ran.id, timeout=90)
        assert ran.state == "succeeded", ran.error
        assert ran.worker.rsplit(":", 1)[0] != able_name
        still = jobs_db.get(db, job.id)
        assert still.state == "queued" and still.attempts == 0, (still.state, still.errors)
        assert still.message_id == waiting.message_id and _message_in(still, "priority.render")

        end_now(db, [hold])  # the worker with Chromium is free
        done = wait_final(db, job.id, timeout=120)
    finally:
        for proc in (able, losing):
            if proc is not None:
                stop(proc, signal.SIGKILL)
    assert done.state == "succeeded", done.error
    assert done.attempts == 1 and not done.errors
    assert done.worker.rsplit(":", 1)[0] == able_name
    lost = _lines(losing, LOST)
    assert len(lost) == 1 and FIX in lost[0] and "priority.render" in lost[0], lost
    assert not _lines(losing, "needs Chromium"), losing.log.read_text(errors="replace")[-3000:]
    assert "Traceback" not in losing.log.read_text(errors="replace")


def test_a_worker_that_lost_chromium_alone_lets_its_crawls_go_back_and_takes_them_again_once_back(
        db, site, job_env, tmp_path, no_live_renderer):
    """The only worker with Chromium loses it while it runs. It leaves the render queues at
    once, so a crawl waiting there goes back to its own queue once the reaper has seen no
    worker with Chromium for FORECOURT_JOB_RENDERER_GONE_AFTER_S, and fails there in one line
    with the fix (as with no worker with Chromium at all); it is neither put back every 15 s
    nor run by this worker meanwhile. Chromium re-installed, the worker says so once and
    takes the render queues again without a restart: it drops the copy left there (its job
    is over) and runs the next JavaScript crawl."""
    from jobs import renderers, routing, service

    worker = None
    try:
        worker, chromium = _losing_chromium(job_env, tmp_path, "worker", RENDERER_GONE)
        wait_for(lambda: renderers.alive("priority.render"),
                 what="the worker to advertise Chromium")
        chromium.unlink()  # Chromium removed under the running worker
        wait_for(lambda: _lines(worker, LOST), what="the worker to say it lost Chromium")
        assert renderers.alive("priority.render") is None  # at once, not 15 s later
        dealer = _javascript_dealer(db, site, "dawn")
        job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
        routing.send(db, job, to="priority.render")  # sent as it said it had Chromium
        job = jobs_db.get(db, job.id)
        done = wait_final(db, job.id, timeout=150)
        assert _message_in(job, "priority.render")  # the copy left there: nobody took it

        import os

        os.symlink("/usr/bin/chromium", chromium)  # Chromium re-installed
        wait_for(lambda: _lines(worker, BACK), what="the worker to say Chromium is back")
        wait_for(lambda: not _message_in(job, "priority.render"), timeout=60,
                 what="the stale render-queue message to be dropped")
        again = _javascript_dealer(db, site, "dusk")
        second, _ = service.trigger(db, again.id, "crawl", "operator")
        second = wait_final(db, second.id, timeout=120)
    finally:
        if worker is not None:
            stop(worker, signal.SIGKILL)
    log = worker.log.read_text(errors="replace")
    assert done.state == "failed" and done.attempts == 1 and done.retry_at is None, done.error
    assert FIX in done.error
    assert len([ln for ln in log.splitlines() if NONE_ALIVE in ln]) == 1, log[-3000:]
    assert len(_lines(worker, "no worker with Chromium has taken")) == 1, log[-3000:]
    assert len(_lines(worker, LOST)) == 1 and len(_lines(worker, BACK)) == 1, log[-3000:]
    assert not _lines(worker, "no longer has"), log[-3000:]  # no put-back every 15 s
    assert second.state == "succeeded" and second.attempts == 1, second.error
    assert "Traceback" not in log, log[-3000:]


def test_a_javascript_crawl_triggered_while_the_only_worker_with_chromium_reinstalls_it_waits(
        db, site, job_env, tmp_path, no_live_renderer):
    """The only worker with Chromium loses it for a moment (a package upgrade re-installing
    it, a restart for a deploy). A JavaScript dealer's crawl triggered then went to its own
    queue, where a worker without Chromium failed it at once (or, here, this one handed it
    on): a run lost to routine maintenance. Now a crawl goes to the render queue while a
    worker with Chromium was seen there within FORECOURT_JOB_RENDERER_GONE_AFTER_S, waits
    there, and runs once Chromium is back (the reaper would send it back had none come)."""
    import os

    from jobs import renderers, service

    worker = None
    try:
        worker, chromium = _losing_chromium(
            job_env, tmp_path, "worker", {"FORECOURT_JOB_RENDERER_GONE_AFTER_S": "90"})
        wait_for(lambda: renderers.alive("priority.render"),
                 what="the worker to advertise Chromium")
        chromium.unlink()  # Chromium removed under the running worker
        wait_for(lambda: _lines(worker, LOST), what="the worker to say it lost Chromium")
        assert renderers.alive("priority.render") is None
        dealer = _javascript_dealer(db, site, "dawn")
        job, _ = service.trigger(db, dealer.id, "crawl", "operator")
        waiting = jobs_db.get(db, job.id)
        assert waiting.state == "queued" and _message_in(waiting, "priority.render")
        os.symlink("/usr/bin/chromium", chromium)  # Chromium re-installed
        done = wait_final(db, job.id, timeout=120)
    finally:
        if worker is not None:
            stop(worker, signal.SIGKILL)
    log = worker.log.read_text(errors="replace")
    assert done.state == "succeeded", done.error
    assert done.attempts == 1 and not done.errors
    assert not _lines(worker, "needs Chromium"), log[-3000:]
    assert "Traceback" not in log, log[-3000:]
