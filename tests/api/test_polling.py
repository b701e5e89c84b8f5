"""Cheap polling: ETags with 304, and `wait` holding a request until the job changes, without
a database connection per waiter."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx

from crawler.db import connect
from crawler.db import tokens as tokens_db
from tests.api.conftest import METRICS_TOKEN, add_job, assert_problem, auth, pid


def _update(job_id: int, **fields) -> None:
    """Change a job from another connection, as a worker would."""
    sets = ", ".join(f"{k} = %s" for k in fields)
    with connect() as conn:
        conn.execute(f"UPDATE jobs SET {sets}, updated_at = now() WHERE id = %s",
                     (*fields.values(), job_id))


def test_job_etag_answers_304_until_the_job_changes(api, world):
    job = add_job(world["db"], world["acme"].id, state="running", phase="crawling")
    acme = auth(world["tokens"]["acme"])
    first = api.get(f"/v1/jobs/{pid(job)}", headers=acme)
    tag = first.headers["etag"]
    same = api.get(f"/v1/jobs/{pid(job)}", headers=acme | {"If-None-Match": tag})
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == tag
    _update(job, phase="storing")
    changed = api.get(f"/v1/jobs/{pid(job)}", headers=acme | {"If-None-Match": tag})
    assert changed.status_code == 200 and changed.json()["phase"] == "storing"
    assert changed.headers["etag"] != tag


def test_list_etag_answers_304_until_a_job_is_added(api, world):
    add_job(world["db"], world["acme"].id)
    acme = auth(world["tokens"]["acme"])
    tag = api.get("/v1/dealerships/acme/jobs", headers=acme).headers["etag"]
    assert api.get("/v1/dealerships/acme/jobs",
                   headers=acme | {"If-None-Match": tag}).status_code == 304
    add_job(world["db"], world["acme"].id, kind="feed")
    again = api.get("/v1/dealerships/acme/jobs", headers=acme | {"If-None-Match": tag})
    assert again.status_code == 200 and len(again.json()["items"]) == 2


def _wait_in_thread(api, path, headers):
    result = {}
    done = threading.Event()

    def run():
        result["resp"] = api.get(path, headers=headers)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return result, done


def test_wait_holds_the_request_and_answers_as_soon_as_the_job_changes(api, world):
    job = add_job(world["db"], world["acme"].id, state="running", phase="crawling")
    acme = auth(world["tokens"]["acme"])
    tag = api.get(f"/v1/jobs/{pid(job)}", headers=acme).headers["etag"]
    result, done = _wait_in_thread(api, f"/v1/jobs/{pid(job)}?wait=30",
                                   acme | {"If-None-Match": tag})
    assert not done.wait(0.7), "nothing changed, so the request is still waiting"
    _update(job, phase="storing", counters='{"items": 5}')
    assert done.wait(20), "the change answered the waiting request"
    resp = result["resp"]
    # A timeout would have answered 304 with the old ETag: this is the change itself.
    assert resp.status_code == 200 and resp.json()["phase"] == "storing"
    assert resp.json()["counters"] == {"items": 5} and resp.headers["etag"] != tag


def test_wait_with_since_version_answers_on_change(api, world):
    job = add_job(world["db"], world["acme"].id, state="queued")
    acme = auth(world["tokens"]["acme"])
    version = api.get(f"/v1/jobs/{pid(job)}", headers=acme).json()["version"]
    result, done = _wait_in_thread(api, f"/v1/jobs/{pid(job)}?wait=30&since={version}", acme)
    assert not done.wait(0.7)
    _update(job, state="running", phase="starting")
    assert done.wait(20)
    body = result["resp"].json()
    assert body["state"] == "running" and body["version"] != version


def test_wait_without_change_ends_with_304(api, world):
    job = add_job(world["db"], world["acme"].id)
    acme = auth(world["tokens"]["acme"])
    tag = api.get(f"/v1/jobs/{pid(job)}", headers=acme).headers["etag"]
    resp = api.get(f"/v1/jobs/{pid(job)}?wait=0.5", headers=acme | {"If-None-Match": tag})
    assert resp.status_code == 304 and resp.headers["etag"] == tag
    assert_problem(api.get(f"/v1/jobs/{pid(job)}?wait=31", headers=acme), 422)
    other = add_job(world["db"], world["bolt"].id)
    assert_problem(api.get(f"/v1/jobs/{pid(other)}?wait=5", headers=acme), 404)


def test_many_waiters_hold_no_database_connections(api_server, world):
    """120 waiters on a server whose pool has 4 connections: other requests still answer, and
    one change answers every waiter."""
    db = world["db"]
    job = add_job(db, world["acme"].id, state="running", phase="crawling")
    other = add_job(db, world["acme"].id, state="succeeded")
    acme = auth(world["tokens"]["acme"])

    async def scenario():
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=api_server.url, timeout=30,
                                     limits=limits) as client:
            tag = (await client.get(f"/v1/jobs/{pid(job)}", headers=acme)).headers["etag"]
            waiters = [asyncio.create_task(client.get(
                f"/v1/jobs/{pid(job)}?wait=25", headers=acme | {"If-None-Match": tag}))
                for _ in range(120)]
            await asyncio.sleep(1.0)
            assert not any(w.done() for w in waiters)
            # were waiters holding connections, these would wait out the pool (503)
            async with httpx.AsyncClient(base_url=api_server.url, timeout=30) as side:
                quick = [await side.get(f"/v1/jobs/{pid(other)}", headers=acme) for _ in range(10)]
            assert [r.status_code for r in quick] == [200] * 10
            await asyncio.to_thread(_update, job, phase="storing")
            return await asyncio.gather(*waiters)

    answers = asyncio.run(scenario())
    assert [r.status_code for r in answers] == [200] * 120
    assert {r.json()["phase"] for r in answers} == {"storing"}


def test_inventory_and_dead_letters_answer_304_until_they_change(api, world):
    db, aid = world["db"], world["acme"].id
    acme = auth(world["tokens"]["acme"])
    paths = ("/v1/dealerships/acme/inventory", "/v1/dealerships/acme/dead-letters")
    tags = {}
    for path in paths:
        tags[path] = api.get(path, headers=acme).headers["etag"]
        same = api.get(path, headers=acme | {"If-None-Match": tags[path]})
        assert same.status_code == 304, path
        assert same.content == b"" and same.headers["etag"] == tags[path]
    db.execute("INSERT INTO vehicles (dealership_id, vin, quality_score, status, content_hash)"
               " VALUES (%s, 'V1', 90, 'active', 'h')", (aid,))
    add_job(db, aid, state="dead", error="site gone")
    for path in paths:
        changed = api.get(path, headers=acme | {"If-None-Match": tags[path]})
        assert changed.status_code == 200 and changed.headers["etag"] != tags[path], path


def _waiting(url: str) -> float:
    """How many requests the API process holds waiting (its gauge on /metrics)."""
    resp = httpx.get(url + "/metrics", headers=auth(METRICS_TOKEN), timeout=10)
    assert resp.status_code == 200, resp.text
    text = resp.text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("forecourt_api_waiting_requests"))


def test_a_long_poll_answers_401_not_data_once_its_token_is_revoked(api, api_server, world):
    db = world["db"]
    job = add_job(db, world["acme"].id, state="running", phase="crawling")
    acme = auth(world["tokens"]["acme"])
    tag = api.get(f"/v1/jobs/{pid(job)}", headers=acme).headers["etag"]
    before = _waiting(api_server.url)
    result, done = _wait_in_thread(api, f"/v1/jobs/{pid(job)}?wait=30",
                                   acme | {"If-None-Match": tag})
    deadline = time.monotonic() + 20
    while _waiting(api_server.url) <= before and time.monotonic() < deadline:
        time.sleep(0.01)  # until the request has passed authentication and waits
    assert _waiting(api_server.url) > before, "the long poll is waiting"
    record = next(t for t in tokens_db.list_all(db) if t.dealership_slug == "acme")
    tokens_db.revoke(db, record.id)
    _update(job, phase="storing")  # wakes the waiter with data it may no longer have
    assert done.wait(40)
    resp = result["resp"]
    assert assert_problem(resp, 401)["type"].endswith("unauthorized")
    assert "storing" not in resp.text


def test_a_failed_attempt_its_worker_is_about_to_retry_is_not_shown_as_final(api, world):
    """A worker records a transiently failed attempt `failed`, then (a moment later, on
    another connection) requeues or buries it. A poller must not see that moment as the
    job's end: it is shown still running, settling, until the worker has decided."""
    from crawler.db import job_ends as ends_db
    from crawler.db import job_queue as queue_db

    db, aid = world["db"], world["acme"].id
    acme = auth(world["tokens"]["acme"])
    # as the worker's fail_running leaves a queued job's attempt that failed transiently
    job = add_job(db, aid, state="failed", phase="done", queue="priority", attempts=1,
                  trigger="api", error="listing page https://acme.test/ failed: DNS lookup",
                  error_kind="transient:ConnectionError")
    db.execute("UPDATE jobs SET finished_at = now() WHERE id = %s", (job,))
    shown = api.get(f"/v1/jobs/{pid(job)}", headers=acme).json()
    assert (shown["state"], shown["phase"], shown["finished_at"]) == ("running", "settling", None)
    assert shown["error"].startswith("listing page")  # what went wrong is shown meanwhile
    listed = api.get("/v1/dealerships/acme/jobs", headers=acme).json()["items"]
    assert [(j["id"], j["state"], j["phase"]) for j in listed] == \
        [(pid(job), "running", "settling")]
    queue_db.requeue(db, job, 30)  # the worker's decision: a retry
    assert api.get(f"/v1/jobs/{pid(job)}", headers=acme).json()["state"] == "queued"

    # its last attempt: the worker buries it; failed is shown only once it is dead
    last = add_job(db, world["bolt"].id, kind="feed", state="failed", phase="done",
                   queue="priority", attempts=4, error="timed out",
                   error_kind="transient:TimeoutError")
    bolt = auth(world["tokens"]["bolt"])
    assert api.get(f"/v1/jobs/{pid(last)}", headers=bolt).json()["state"] == "running"
    ends_db.bury(db, last)
    assert api.get(f"/v1/jobs/{pid(last)}", headers=bolt).json()["state"] == "dead"

    # final failures are shown as they are: a permanent one, one run at the terminal
    gone = add_job(db, aid, state="failed", phase="done", queue="priority", attempts=1,
                   error="listing page 404", error_kind="permanent:Permanent")
    here = add_job(db, aid, state="failed", phase="done", attempts=1, trigger="operator",
                   error="timed out", error_kind="transient:TimeoutError")
    for final in (gone, here):
        assert api.get(f"/v1/jobs/{pid(final)}", headers=acme).json()["state"] == "failed"


def test_a_failed_attempt_no_worker_acted_on_is_shown_failed_once_the_reaper_would_have(
        api, world):
    """A failure the worker could not act on (the dealer had a newer active job, so its
    retry was refused; the job was replayed; its worker died and no reaper ran) stays
    `failed` in the record. It was shown running/settling for ever; past the time the
    reaper acts on such a job (FORECOURT_JOB_REAP_AFTER_S) it is shown as it is."""
    from crawler.db import job_queue as queue_db
    from crawler.db import jobs as jobs_db

    db, aid = world["db"], world["acme"].id
    acme = auth(world["tokens"]["acme"])
    old = add_job(db, aid, state="failed", phase="done", queue="priority", attempts=1,
                  trigger="api", error="timed out", error_kind="transient:TimeoutError")
    db.execute("UPDATE jobs SET finished_at = now() - interval '1 hour' WHERE id = %s",
               (old,))
    newer, _ = jobs_db.create_or_get_active(db, aid, "crawl", "schedule")
    assert queue_db.requeue(db, old, 30) is None  # the worker's retry, refused
    shown = api.get(f"/v1/jobs/{pid(old)}", headers=acme).json()
    assert (shown["state"], shown["phase"]) == ("failed", "done"), shown
    assert shown["finished_at"] is not None
    # replayed: the new job runs instead, whatever the time
    replayed = add_job(db, world["bolt"].id, state="failed", phase="done", queue="priority",
                       attempts=1, error="timed out", error_kind="transient:TimeoutError")
    db.execute("UPDATE jobs SET finished_at = now(), replayed_as = %s WHERE id = %s",
               (newer.id, replayed))
    bolt = auth(world["tokens"]["bolt"])
    assert api.get(f"/v1/jobs/{pid(replayed)}", headers=bolt).json()["state"] == "failed"


def test_version_moves_when_a_settling_job_is_shown_failed(api, world):
    """A failed attempt no worker acted on is shown running/settling, then, twice
    FORECOURT_JOB_REAP_AFTER_S (60 s here) after it failed, `failed`: the body changed but
    `version` (its updated_at) did not, so a UI waiting with `since` never saw the failure.
    The version moves with that change, once: not on every poll."""
    db = world["db"]
    acme = auth(world["tokens"]["acme"])
    job = add_job(db, world["acme"].id, state="failed", phase="done", queue="priority",
                  attempts=1, error="timed out", error_kind="transient:TimeoutError")
    # shown settling for about 1.5 s more
    db.execute("UPDATE jobs SET finished_at = now() - interval '118.5 seconds',"
               " updated_at = now() - interval '118.5 seconds' WHERE id = %s", (job,))
    settling = api.get(f"/v1/jobs/{pid(job)}", headers=acme).json()
    assert (settling["state"], settling["phase"]) == ("running", "settling"), settling
    started = time.monotonic()
    waited = api.get(f"/v1/jobs/{pid(job)}", params={"wait": 10, "since": settling["version"]},
                     headers=acme)
    shown = waited.json()
    assert (shown["state"], shown["phase"]) == ("failed", "done"), shown
    assert shown["version"] != settling["version"]
    # the wait answered when the job was shown failed, before its 10 s were up (not a
    # speed threshold: a wait that only looked again at its end takes the whole 10 s)
    assert time.monotonic() - started < 10
    again = api.get(f"/v1/jobs/{pid(job)}", headers=acme)
    assert again.json()["version"] == shown["version"], "no new version on every poll"
    assert api.get(f"/v1/jobs/{pid(job)}", params={"wait": 0.3, "since": shown["version"]},
                   headers=acme).json()["version"] == shown["version"]
    assert api.get(f"/v1/jobs/{pid(job)}", headers=acme | {
        "If-None-Match": again.headers["etag"]}).status_code == 304
