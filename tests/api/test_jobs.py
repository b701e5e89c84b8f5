"""Every job endpoint through real HTTP: trigger, get, list with filters and cursors, cancel,
replay, dead letters, inventory."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from tests.api.conftest import add_job, assert_problem, auth


def test_trigger_queues_a_job_then_returns_the_active_one(api, world):
    acme = auth(world["tokens"]["acme"])
    first = api.post("/v1/dealerships/acme/jobs", json={"kind": "crawl"}, headers=acme)
    assert first.status_code == 202, first.text
    job = first.json()
    assert job["state"] == "queued" and job["trigger"] == "api" and job["kind"] == "crawl"
    assert first.headers["location"] == f"/v1/jobs/{job['id']}"
    again = api.post("/v1/dealerships/acme/jobs", json={"kind": "crawl"}, headers=acme)
    assert again.status_code == 200 and again.json()["id"] == job["id"]
    row = world["db"].execute("SELECT state, trigger, message_id FROM jobs").fetchall()
    assert len(row) == 1 and row[0]["message_id"], "the job's message went on the queue"


def test_trigger_refuses_what_the_dealer_cannot_run(api, world):
    op = auth(world["tokens"]["operator"])
    body = assert_problem(api.post("/v1/dealerships/bolt/jobs", json={"kind": "crawl"},
                                   headers=op), 422)
    assert "no website URL" in body["detail"]
    assert_problem(api.post("/v1/dealerships/acme/jobs", json={"kind": "scrape"}, headers=op),
                   422)
    assert_problem(api.post("/v1/dealerships/acme/jobs", json={}, headers=op), 422)
    assert_problem(api.post("/v1/dealerships/acme/jobs", json={"kind": "crawl", "x": 1},
                            headers=op), 422)


def test_get_job_shows_state_phase_counters_timestamps_verdict_and_error(api, world):
    db = world["db"]
    job = add_job(db, world["acme"].id, state="failed", phase="done", attempts=2,
                  counters={"pages": 3, "items": 20, "valid": 18, "rejected": 2},
                  verdict="degraded", report={"verdict": "degraded", "reasons": ["x"]},
                  error="site answered 503", error_kind="transient",
                  started_at="2026-01-01T10:00:00Z", finished_at="2026-01-01T10:05:00Z")
    got = api.get(f"/v1/jobs/{job}", headers=auth(world["tokens"]["acme"]))
    assert got.status_code == 200 and got.headers["content-type"] == "application/json"
    body = got.json()
    assert body["state"] == "failed" and body["phase"] == "done" and body["attempts"] == 2
    assert body["counters"] == {"pages": 3, "items": 20, "valid": 18, "rejected": 2}
    assert body["verdict"] == "degraded" and body["report"]["reasons"] == ["x"]
    assert body["error"] == "site answered 503" and body["error_kind"] == "transient"
    assert body["started_at"].startswith("2026-01-01T10:00:00")
    assert body["finished_at"].startswith("2026-01-01T10:05:00")
    assert isinstance(body["version"], int) and body["dealership"] == "acme"


def test_list_is_newest_first_filtered_and_paged_by_cursor(api, world):
    db, aid = world["db"], world["acme"].id
    ids = [add_job(db, aid, kind="crawl" if i % 2 else "feed",
                   state="failed" if i % 3 == 0 else "succeeded") for i in range(7)]
    add_job(db, world["bolt"].id, kind="feed")  # another dealer's: never listed for acme
    acme = auth(world["tokens"]["acme"])
    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = api.get("/v1/dealerships/acme/jobs", params=params, headers=acme).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    failed = api.get("/v1/dealerships/acme/jobs", params={"state": "failed"}, headers=acme)
    assert [j["id"] for j in failed.json()["items"]] == [ids[6], ids[3], ids[0]]
    crawls = api.get("/v1/dealerships/acme/jobs", params={"kind": "crawl", "state": "failed"},
                     headers=acme).json()["items"]
    assert [j["id"] for j in crawls] == [ids[3]]
    bad = api.get("/v1/dealerships/acme/jobs", params={"cursor": "not-a-cursor"}, headers=acme)
    assert assert_problem(bad, 400)["type"].endswith("invalid-cursor")
    assert_problem(api.get("/v1/dealerships/acme/jobs", params={"limit": 0}, headers=acme), 422)


def test_cancel_stops_a_queued_job_and_refuses_an_ended_one(api, world):
    acme = auth(world["tokens"]["acme"])
    job = api.post("/v1/dealerships/acme/jobs", json={"kind": "crawl"}, headers=acme).json()
    cancelled = api.post(f"/v1/jobs/{job['id']}/cancel", headers=acme)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    done = add_job(world["db"], world["acme"].id, state="succeeded")
    body = assert_problem(api.post(f"/v1/jobs/{done}/cancel", headers=acme), 409)
    assert "already ended" in body["detail"]
    assert_problem(api.post("/v1/jobs/999999/cancel", headers=acme), 404)


def test_dead_letters_list_and_replay(api, world):
    db, acme = world["db"], auth(world["tokens"]["acme"])
    dead = add_job(db, world["acme"].id, state="dead", error="site gone", error_kind="permanent",
                   errors=[{"attempt": 1, "error": "site gone"}])
    add_job(db, world["acme"].id, state="succeeded")
    letters = api.get("/v1/dealerships/acme/dead-letters", headers=acme).json()["items"]
    assert [j["id"] for j in letters] == [dead] and letters[0]["errors"][0]["error"] == "site gone"
    replayed = api.post(f"/v1/jobs/{dead}/replay", headers=acme)
    assert replayed.status_code == 202, replayed.text
    new = replayed.json()
    assert new["id"] != dead and new["state"] == "queued" and new["kind"] == "crawl"
    assert api.get(f"/v1/jobs/{dead}", headers=acme).json()["replayed_as"] == new["id"]
    assert api.get("/v1/dealerships/acme/dead-letters", headers=acme).json()["items"] == []
    ok = add_job(db, world["acme"].id, state="succeeded")
    assert_problem(api.post(f"/v1/jobs/{ok}/replay", headers=acme), 409)


def test_inventory_summarises_vehicles_last_good_run_and_quality(api, world):
    db, aid = world["db"], world["acme"].id
    job = add_job(db, aid, state="succeeded", verdict="healthy",
                  counters={"items": 4, "valid": 3, "rejected": 1, "upserted": 3},
                  finished_at="2026-02-01T12:00:00Z")
    add_job(db, aid, state="failed")  # a later failure is not the last successful run
    for vin, score, flags, status in [("V1", 90, [], "active"), ("V2", 60, ["no_price"], "active"),
                                      ("V3", 75, [], "removed")]:
        db.execute("INSERT INTO vehicles (dealership_id, vin, quality_score, quality_flags,"
                   " status, content_hash) VALUES (%s, %s, %s, %s, %s, 'h')",
                   (aid, vin, score, flags, status))
    db.execute("INSERT INTO rejects (job_id, dealership_id, reasons, payload)"
               " VALUES (%s, %s, %s, %s)", (job, aid, ["no vin"], Jsonb({})))
    body = api.get("/v1/dealerships/acme/inventory",
                   headers=auth(world["tokens"]["acme"])).json()
    assert body["active_vehicles"] == 2 and body["removed_vehicles"] == 1
    assert body["last_successful_run"]["job_id"] == job
    assert body["last_successful_run"]["counters"]["upserted"] == 3
    assert body["quality"] == {"avg_score": 75.0, "min_score": 60, "flagged_vehicles": 1,
                               "placeholder_vins": 0, "last_run_rejects": 1,
                               "last_run_verdict": "healthy"}
