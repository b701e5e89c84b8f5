"""A worker on a machine without Chromium: it starts (it may serve only plain-HTTP dealers)
with one warning line naming FORECOURT_CHROMIUM_PATH and the fix, and a JavaScript-site crawl
it takes fails once, permanently, with that fix: never retried into a dead letter, since
every attempt would meet the same missing browser."""

from __future__ import annotations

import signal

from crawler.db import dealers as dealers_db
from tests.jobs.conftest import WORKER_READY, _ready, _spawn, stop, wait_final

FIX = "apt-get install -y chromium, or set FORECOURT_CHROMIUM_PATH"


def test_a_worker_without_chromium_warns_once_and_fails_javascript_crawls_permanently(
        db, site, job_env, tmp_path):
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
