"""Every job endpoint through real HTTP: trigger, get, list with filters and cursors, cancel,
replay, dead letters, inventory."""

from __future__ import annotations

import base64
import re
import subprocess

from psycopg.types.json import Jsonb

from tests.api.conftest import FORECOURT, add_job, assert_problem, auth, pid


def test_trigger_queues_a_job_then_returns_the_active_one(api, world):
    acme = auth(world["tokens"]["acme"])
    first = api.post("/v1/dealerships/acme/jobs", json={"kind": "crawl"}, headers=acme)
    assert first.status_code == 202, first.text
    job = first.json()
    assert job["state"] == "queued" and job["trigger"] == "api" and job["kind"] == "crawl"
    assert first.headers["location"] == f"/v1/jobs/{pid(job['id'])}"
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
    got = api.get(f"/v1/jobs/{pid(job)}", headers=auth(world["tokens"]["acme"]))
    assert got.status_code == 200 and got.headers["content-type"] == "application/json"
    body = got.json()
    assert body["state"] == "failed" and body["phase"] == "done" and body["attempts"] == 2
    assert body["counters"] == {"pages": 3, "items": 20, "valid": 18, "rejected": 2}
    assert body["verdict"] == "degraded" and body["report"]["reasons"] == ["x"]
    assert body["error"] == "site answered 503" and body["error_kind"] == "transient"
    assert body["started_at"].startswith("2026-01-01T10:00:00")
    assert body["finished_at"].startswith("2026-01-01T10:05:00")
    assert isinstance(body["version"], int) and body["dealership"] == "acme"


def test_a_running_retry_shows_no_verdict_or_error_of_the_failed_attempt(api, world):
    """The UI showed "running, verdict failed" while a job's retry ran: claiming the retry
    kept attempt 1's verdict, report, error and error kind. Attempt 1's error stays in
    `errors`."""
    from crawler.db import job_queue as queue_db
    from crawler.db import jobs as jobs_db

    db, acme = world["db"], auth(world["tokens"]["acme"])
    job, _ = jobs_db.create_or_get_active(db, world["acme"].id, "crawl", "api")
    queue_db.set_message(db, job.id, "priority", "m1")
    queue_db.claim(db, job.id, "w1", 60, "m1")
    jobs_db.finish(db, job.id, "failed", counters={}, verdict="failed",
                   report={"verdict": "failed", "reasons": ["HTTP 503"]},
                   error="HTTP 503", error_kind="failed")
    queue_db.requeue(db, job.id, 0)
    waiting = api.get(f"/v1/jobs/{pid(job.id)}", headers=acme).json()
    assert (waiting["state"], waiting["error"]) == ("queued", "HTTP 503"), "why it waits"
    queue_db.claim(db, job.id, "w2", 60, "m1")
    for body in (api.get(f"/v1/jobs/{pid(job.id)}", headers=acme).json(),
                 api.get("/v1/dealerships/acme/jobs", headers=acme).json()["items"][0]):
        assert (body["state"], body["attempts"]) == ("running", 2), body
        assert (body["verdict"], body["error"], body["error_kind"]) == (None, None, None), body
        assert body.get("report") is None, body
    shown = api.get(f"/v1/jobs/{pid(job.id)}", headers=acme).json()
    assert [(e["attempt"], e["error"]) for e in shown["errors"]] == [(1, "HTTP 503")]


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
    assert seen == [pid(i) for i in sorted(ids, reverse=True)]
    failed = api.get("/v1/dealerships/acme/jobs", params={"state": "failed"}, headers=acme)
    assert [j["id"] for j in failed.json()["items"]] == [pid(ids[i]) for i in (6, 3, 0)]
    crawls = api.get("/v1/dealerships/acme/jobs", params={"kind": "crawl", "state": "failed"},
                     headers=acme).json()["items"]
    assert [j["id"] for j in crawls] == [pid(ids[3])]
    bad = api.get("/v1/dealerships/acme/jobs", params={"cursor": "not-a-cursor"}, headers=acme)
    assert assert_problem(bad, 400)["type"].endswith("invalid-cursor")
    assert_problem(api.get("/v1/dealerships/acme/jobs", params={"limit": 0}, headers=acme), 422)


def test_cancel_stops_a_queued_job_and_refuses_an_ended_one(api, world):
    acme = auth(world["tokens"]["acme"])
    job = api.post("/v1/dealerships/acme/jobs", json={"kind": "crawl"}, headers=acme).json()
    cancelled = api.post(f"/v1/jobs/{pid(job['id'])}/cancel", headers=acme)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    done = add_job(world["db"], world["acme"].id, state="succeeded")
    body = assert_problem(api.post(f"/v1/jobs/{pid(done)}/cancel", headers=acme), 409)
    assert "already ended" in body["detail"]
    assert_problem(api.post("/v1/jobs/999999/cancel", headers=acme), 404)


def test_dead_letters_list_and_replay(api, world):
    db, acme = world["db"], auth(world["tokens"]["acme"])
    dead = add_job(db, world["acme"].id, state="dead", error="site gone", error_kind="permanent",
                   errors=[{"attempt": 1, "error": "site gone"}])
    add_job(db, world["acme"].id, state="succeeded")
    letters = api.get("/v1/dealerships/acme/dead-letters", headers=acme).json()["items"]
    assert [j["id"] for j in letters] == [pid(dead)]
    assert letters[0]["errors"][0]["error"] == "site gone"
    replayed = api.post(f"/v1/jobs/{pid(dead)}/replay", headers=acme)
    assert replayed.status_code == 202, replayed.text
    new = replayed.json()
    assert new["id"] != pid(dead) and new["state"] == "queued" and new["kind"] == "crawl"
    assert api.get(f"/v1/jobs/{pid(dead)}", headers=acme).json()["replayed_as"] == new["id"]
    assert api.get("/v1/dealerships/acme/dead-letters", headers=acme).json()["items"] == []
    ok = add_job(db, world["acme"].id, state="succeeded")
    assert_problem(api.post(f"/v1/jobs/{pid(ok)}/replay", headers=acme), 409)


def test_a_dealer_sees_no_worker_in_the_error_history_either(api, world):
    """An attempt ended as abandoned (its worker died or stalled, the reaper or the next
    attempt took over) records the worker, a host and pid of ours, in its `errors` entry:
    the dealer's view left `worker` out of the job but not out of its history."""
    db, aid = world["db"], world["acme"].id
    history = [{"at": "2026-01-01T00:00:00+00:00", "attempt": 1, "kind": "abandoned",
                "error": "worker died", "worker": "build-7.internal:4242:Thread-3"},
               {"at": "2026-01-01T00:05:00+00:00", "attempt": 2, "kind": "failed",
                "error": "site gone"}]
    job = add_job(db, aid, state="dead", error="site gone", errors=history,
                  worker="build-7.internal:4242:Thread-3")
    acme = auth(world["tokens"]["acme"])
    for body in (api.get(f"/v1/jobs/{pid(job)}", headers=acme).json(),
                 api.get("/v1/dealerships/acme/dead-letters", headers=acme).json()["items"][0]):
        assert "build-7" not in str(body), body
        assert [e["error"] for e in body["errors"]] == ["worker died", "site gone"]
        assert body["errors"][0]["attempt"] == 1 and body["errors"][0]["kind"] == "abandoned"
    ops = api.get(f"/v1/jobs/{pid(job)}", headers=auth(world["tokens"]["operator"])).json()
    assert ops["errors"][0]["worker"] == "build-7.internal:4242:Thread-3"


def test_dead_letters_say_when_there_are_more_than_listed(api, world):
    """The list is the newest 200; past that it was cut without a word, and a UI counting
    its items told the dealer 200."""
    db, aid, acme = world["db"], world["acme"].id, auth(world["tokens"]["acme"])
    db.execute("INSERT INTO jobs (dealership_id, kind, trigger, state)"
               " SELECT %s, 'crawl', 'schedule', 'dead' FROM generate_series(1, 200)", (aid,))
    page = api.get("/v1/dealerships/acme/dead-letters", headers=acme).json()
    assert len(page["items"]) == 200 and page["more"] is False
    newest = add_job(db, aid, state="dead")
    page = api.get("/v1/dealerships/acme/dead-letters", headers=acme).json()
    assert len(page["items"]) == 200 and page["more"] is True
    assert page["items"][0]["id"] == pid(newest), "newest first"


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
    assert body["last_successful_run"]["job_id"] == pid(job)
    assert body["last_successful_run"]["counters"]["upserted"] == 3
    assert body["quality"] == {"avg_score": 75.0, "min_score": 60, "flagged_vehicles": 1,
                               "placeholder_vins": 0, "last_run_rejects": 1,
                               "last_run_verdict": "healthy"}


def _cursor(text: str) -> str:
    """A cursor as the API encodes one, around any text."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_crafted_cursors_are_400_problems_not_500s(api, world):
    add_job(world["db"], world["acme"].id)
    acme = auth(world["tokens"]["acme"])
    for text in ("j\u00b2",  # '²': str.isdigit() says yes, int() says no
                 "j\u0663",  # Arabic-Indic 3: int() takes it, but it is not one of our ids
                 "j\uff13",  # fullwidth 3
                 "j9223372036854775808",  # 2**63: past bigint
                 "j9999999999999999999", "j", "j-1", "j 1", "x1"):
        resp = api.get("/v1/dealerships/acme/jobs", params={"cursor": _cursor(text)},
                       headers=acme)
        assert assert_problem(resp, 400)["type"].endswith("invalid-cursor"), text
    # one too long to be ours is a bad cursor like the others, not a 422 of another type
    for cursor in ("A" * 65, "A" * 4000):
        resp = api.get("/v1/dealerships/acme/jobs", params={"cursor": cursor}, headers=acme)
        assert assert_problem(resp, 400)["type"].endswith("invalid-cursor"), len(cursor)
    # the cursors of before (an id in base64) are not cursors now
    resp = api.get("/v1/dealerships/acme/jobs", params={"cursor": _cursor(f"j{2**63 - 1}")},
                   headers=acme)
    assert assert_problem(resp, 400)["type"].endswith("invalid-cursor")


def test_cancelling_twice_is_idempotent(api, world):
    """The README's choice: a job already cancelled answers 200 as it is (a UI's double
    click is harmless); a job that ended any other way answers 409."""
    acme = auth(world["tokens"]["acme"])
    job = api.post("/v1/dealerships/acme/jobs", json={"kind": "crawl"}, headers=acme).json()
    first = api.post(f"/v1/jobs/{pid(job['id'])}/cancel", headers=acme)
    second = api.post(f"/v1/jobs/{pid(job['id'])}/cancel", headers=acme)
    assert first.status_code == second.status_code == 200, second.text
    assert second.json()["state"] == "cancelled"
    assert second.json()["version"] == first.json()["version"], "the second changed nothing"
    for state in ("failed", "dead", "succeeded"):
        ended = add_job(world["db"], world["acme"].id, state=state)
        body = assert_problem(api.post(f"/v1/jobs/{pid(ended)}/cancel", headers=acme), 409)
        assert f"already ended {state}" in body["detail"]


def test_cancel_ends_a_failed_attempt_its_worker_is_about_to_retry(api, world):
    """Such a job is shown running, settling (a moment between the worker's two
    statements, or longer when the worker died then): cancelling it ends it cancelled, and
    the worker's retry, arriving after, finds nothing to requeue."""
    from crawler.db import job_queue as queue_db
    from crawler.db import jobs as jobs_db

    db, acme = world["db"], auth(world["tokens"]["acme"])
    job = add_job(db, world["acme"].id, state="failed", phase="done", queue="priority",
                  attempts=1, trigger="api", error="connection refused",
                  error_kind="transient:ConnectionError")
    assert api.get(f"/v1/jobs/{pid(job)}", headers=acme).json()["state"] == "running"
    cancelled = api.post(f"/v1/jobs/{pid(job)}/cancel", headers=acme)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled" and cancelled.json()["cancel_requested"]
    assert queue_db.requeue(db, job, 0.1) is None  # the worker's retry, a moment late
    assert jobs_db.get(db, job).state == "cancelled"
    assert api.post(f"/v1/jobs/{pid(job)}/cancel", headers=acme).json()["state"] == "cancelled"


def _both_kinds(world) -> None:
    """acme gets a feed too, so it can have a crawl and a feed job."""
    world["db"].execute("UPDATE dealerships SET feed_url = 'https://acme.test/f.csv'"
                        " WHERE id = %s", (world["acme"].id,))


def _letter(db, job_id: int) -> dict:
    return db.execute("SELECT replayed_as, dlq_cleared_at FROM jobs WHERE id = %s",
                      (job_id,)).fetchone()


def test_replay_while_the_dealership_has_an_active_job_is_409_and_keeps_the_dead_letter(
        api, world):
    db, acme = world["db"], auth(world["tokens"]["acme"])
    _both_kinds(world)
    dead = add_job(db, world["acme"].id, kind="feed", state="dead", error="feed gone")
    active = add_job(db, world["acme"].id, kind="crawl", state="running")
    body = assert_problem(api.post(f"/v1/jobs/{pid(dead)}/replay", headers=acme), 409)
    assert body["type"].endswith("conflict")
    assert f"has active job {pid(active)}" in body["detail"] and "when it ends" in body["detail"]
    assert _letter(db, dead) == {"replayed_as": None, "dlq_cleared_at": None}
    letters = api.get("/v1/dealerships/acme/dead-letters", headers=acme).json()["items"]
    assert [j["id"] for j in letters] == [pid(dead)]
    # same kind active: refused the same way
    same = add_job(db, world["acme"].id, kind="crawl", state="dead")
    assert f"has active job {pid(active)}" in assert_problem(
        api.post(f"/v1/jobs/{pid(same)}/replay", headers=acme), 409)["detail"]
    db.execute("UPDATE jobs SET state = 'succeeded' WHERE id = %s", (active,))
    replayed = api.post(f"/v1/jobs/{pid(dead)}/replay", headers=acme)
    assert replayed.status_code == 202, replayed.text
    assert replayed.json()["kind"] == "feed"
    assert pid(_letter(db, dead)["replayed_as"]) == replayed.json()["id"]


def test_a_dead_job_is_replayed_once(api, world):
    db, acme = world["db"], auth(world["tokens"]["acme"])
    dead = add_job(db, world["acme"].id, state="dead", error="site gone")
    first = api.post(f"/v1/jobs/{pid(dead)}/replay", headers=acme)
    assert first.status_code == 202, first.text
    new = first.json()["id"]
    again = assert_problem(api.post(f"/v1/jobs/{pid(dead)}/replay", headers=acme), 409)
    assert again["detail"] == f"job {pid(dead)} was already replayed as job {new}"
    # once the replay has ended, the dealership is free, and still no second replay
    assert api.post(f"/v1/jobs/{pid(new)}/cancel", headers=acme).status_code == 200
    later = assert_problem(api.post(f"/v1/jobs/{pid(dead)}/replay", headers=acme), 409)
    assert f"already replayed as job {new}" in later["detail"]
    jobs = db.execute("SELECT count(*) AS n FROM jobs WHERE params->>'replay_of' = %s",
                      (str(dead),)).fetchone()
    assert jobs["n"] == 1


def _dlq(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FORECOURT, "dlq", *args], capture_output=True, text=True,
                          timeout=120)


def test_dlq_replay_cli_refuses_in_one_line_and_keeps_the_dead_letter(world):
    db = world["db"]
    _both_kinds(world)
    dead = add_job(db, world["acme"].id, kind="feed", state="dead", error="feed gone")
    active = add_job(db, world["acme"].id, kind="crawl", state="running")
    for args in ([str(dead)], ["--dealer", "acme"]):
        out = _dlq("replay", *args)
        assert out.returncode == 1, out.stdout + out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
        assert lines[0].startswith("error: dealership acme has active job "
                                   f"{active}; replay job {dead} when it ends")
        assert "queued job" not in out.stdout
        assert _letter(db, dead) == {"replayed_as": None, "dlq_cleared_at": None}
    replayed_as = add_job(db, world["acme"].id, kind="crawl", state="succeeded")
    gone = add_job(db, world["acme"].id, state="dead", replayed_as=replayed_as)
    out = _dlq("replay", str(gone))
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1
    assert f"already replayed as job {replayed_as}" in out.stderr


def test_dlq_show_refuses_a_job_that_is_not_a_dead_letter_in_one_line(world):
    """`dlq show` of a succeeded job printed the whole job, then a note, and exited 0: a
    refusal is one error line naming the command that shows the job, exit 1, no table."""
    db = world["db"]
    dead = add_job(db, world["acme"].id, state="dead", error="site gone")
    done = add_job(db, world["acme"].id, state="succeeded")
    shown = _dlq("show", str(dead))
    assert shown.returncode == 0 and "site gone" in shown.stdout
    assert "not a dead letter" not in shown.stdout + shown.stderr
    other = _dlq("show", str(done))
    assert other.returncode == 1, other.stdout + other.stderr
    assert other.stdout == "", "no table for a refusal"
    assert other.stderr.strip().splitlines() == [
        f"error: job {done} is succeeded, not a dead letter "
        f"(see `forecourt jobs show {done}`; `forecourt dlq list` lists dead letters)"]
    replay = add_job(db, world["acme"].id, state="queued", params={"replay_of": dead})
    new = _dlq("show", str(replay))
    assert new.returncode == 1 and new.stdout == "", new.stdout + new.stderr
    assert new.stderr.strip().splitlines() == [
        f"error: job {replay} is queued, not a dead letter: it replays dead letter {dead} "
        f"(see `forecourt jobs show {replay}`, `forecourt dlq show {dead}`)"]


def test_dealer_tokens_do_not_see_other_dealerships_figures_in_reports(api, world):
    db = world["db"]
    report = {"verdict": "healthy", "reasons": [], "removed": 2, "cross_dealer_updated": 7}
    job = add_job(db, world["acme"].id, state="succeeded", verdict="healthy", report=report)
    dead = add_job(db, world["acme"].id, state="dead", report=report)
    acme, op = auth(world["tokens"]["acme"]), auth(world["tokens"]["operator"])
    mine = api.get(f"/v1/jobs/{pid(job)}", headers=acme).json()["report"]
    assert "cross_dealer_updated" not in mine and mine["removed"] == 2
    assert api.get(f"/v1/jobs/{pid(job)}", headers=op).json()["report"] == report
    waited = api.get(f"/v1/jobs/{pid(job)}", params={"wait": 0.1, "since": 0}, headers=acme)
    assert "cross_dealer_updated" not in waited.json()["report"]
    letters = api.get("/v1/dealerships/acme/dead-letters", headers=acme).json()["items"]
    assert [j["id"] for j in letters] == [pid(dead)]
    assert "cross_dealer_updated" not in letters[0]["report"]
    ops_letters = api.get("/v1/dealerships/acme/dead-letters", headers=op).json()["items"]
    assert ops_letters[0]["report"]["cross_dealer_updated"] == 7


def test_dlq_replay_dealer_replays_the_newest_and_keeps_the_other_kind(world):
    """One job per dealership: the newest dead letter (a feed) is replayed, the older feed
    one is cleared into it, and the crawl one stays a dead letter instead of being marked
    replayed as a feed job."""
    db = world["db"]
    _both_kinds(world)
    crawl = add_job(db, world["acme"].id, kind="crawl", state="dead")
    old_feed = add_job(db, world["acme"].id, kind="feed", state="dead")
    feed = add_job(db, world["acme"].id, kind="feed", state="dead")
    out = _dlq("replay", "--dealer", "acme")
    assert out.returncode == 0, out.stderr
    new = db.execute("SELECT id, kind, state FROM jobs WHERE params->>'replay_of' = %s",
                     (str(feed),)).fetchone()
    assert new["kind"] == "feed" and new["state"] == "queued"
    assert f"queued job {new['id']} (feed, queued)" in out.stdout
    assert f"1 dead letter(s) of another kind kept ({crawl})" in out.stdout
    assert _letter(db, feed)["replayed_as"] == _letter(db, old_feed)["replayed_as"] == new["id"]
    assert _letter(db, crawl) == {"replayed_as": None, "dlq_cleared_at": None}


def _many_dead(db, dealership_id: int, kind: str, n: int) -> list[int]:
    """`n` dead letters in one statement, oldest first."""
    rows = db.execute(
        "INSERT INTO jobs (dealership_id, kind, trigger, state, error)"
        " SELECT %s, %s, 'schedule', 'dead', 'gone' FROM generate_series(1, %s)"
        " RETURNING id", (dealership_id, kind, n)).fetchall()
    return sorted(r["id"] for r in rows)


def _listed(out: str) -> list[int]:
    """The job ids of `dlq list`'s table rows."""
    return [int(m) for m in re.findall(r"^\S\s+(\d+)\s+\S\s+acme\s", out, re.M)]


def test_dlq_list_says_when_more_dead_letters_exist_than_it_shows(world):
    """`dlq list` showed the newest 200 and said nothing of the others."""
    db = world["db"]
    crawls = _many_dead(db, world["acme"].id, "crawl", 203)
    out = _dlq("list", "--dealer", "acme")
    assert out.returncode == 0, out.stderr
    assert _listed(out.stdout) == crawls[::-1][:200]
    assert "more dead letters than the 200 shown" in out.stdout
    assert "--limit" in out.stdout
    few = _dlq("list", "--dealer", "acme", "--limit", "5")
    assert _listed(few.stdout) == crawls[::-1][:5], few.stdout
    assert "more dead letters than the 5 shown" in few.stdout
    every = _dlq("list", "--dealer", "acme", "--limit", "203")
    assert _listed(every.stdout) == crawls[::-1]
    assert "more dead letters" not in every.stdout
    assert _dlq("list", "--limit", "0").returncode == 2


def test_dlq_replay_dealer_clears_every_older_dead_letter_of_its_kind(world):
    """Only the newest 200 dead letters were looked at: older ones of the replayed kind
    stayed dead letters, to be replayed again later, one by one."""
    db = world["db"]
    _both_kinds(world)
    feed = _many_dead(db, world["acme"].id, "feed", 1)[0]
    crawls = _many_dead(db, world["acme"].id, "crawl", 250)
    out = _dlq("replay", "--dealer", "acme")
    assert out.returncode == 0, out.stderr
    new = db.execute("SELECT id FROM jobs WHERE params->>'replay_of' = %s",
                     (str(crawls[-1]),)).fetchone()["id"]
    left = db.execute("SELECT id FROM jobs WHERE state = 'dead' AND dlq_cleared_at IS NULL"
                      " AND dealership_id = %s", (world["acme"].id,)).fetchall()
    assert [r["id"] for r in left] == [feed]
    cleared = db.execute("SELECT count(*) AS n FROM jobs WHERE replayed_as = %s",
                         (new,)).fetchone()["n"]
    assert cleared == 250
    assert f"1 dead letter(s) of another kind kept ({feed})" in out.stdout


def test_a_replayed_or_queued_job_names_the_command_that_follows_it(world):
    """`dlq replay` printed "queued job 22 (crawl, queued)" and `crawl --queue` "job 22
    queued", neither saying how to follow the job (`jobs show 22 --follow`)."""
    db = world["db"]
    dead = add_job(db, world["acme"].id, kind="crawl", state="dead", error="site gone")
    out = _dlq("replay", str(dead))
    assert out.returncode == 0, out.stderr
    new = db.execute("SELECT id FROM jobs WHERE params->>'replay_of' = %s",
                     (str(dead),)).fetchone()["id"]
    assert out.stdout.strip() == (f"queued job {new} (crawl, queued); follow it with "
                                  f"`forecourt jobs show {new} --follow`"), out.stdout
    db.execute("UPDATE jobs SET state = 'cancelled', finished_at = now() WHERE id = %s",
               (new,))
    queued = subprocess.run([FORECOURT, "crawl", "acme", "--queue"], capture_output=True,
                            text=True, timeout=120)
    assert queued.returncode == 0, queued.stderr
    job = db.execute("SELECT max(id) AS id FROM jobs").fetchone()["id"]
    assert queued.stdout.strip() == (f"job {job} queued; follow it with "
                                     f"`forecourt jobs show {job} --follow`"), queued.stdout


def test_a_crawl_waiting_on_a_render_queue_says_it_waits_for_a_worker_with_chromium(api, world):
    """A queued crawl whose message waits on a render queue (jobs/queues.py) showed only
    `queued`, like any other: `waiting_for` says what it waits for, in the job, the list and
    the OpenAPI document; null for a job waiting on its own queue, or whose message went
    back there (another message id than the one sent to the render queue)."""
    db, acme = world["db"], auth(world["tokens"]["acme"])
    op = auth(world["tokens"]["operator"])
    rendered = add_job(db, world["acme"].id, state="queued", queue="priority",
                       message_id="m1", render_message_id="m1")
    plain = add_job(db, world["bolt"].id, state="queued", queue="priority", message_id="m2",
                    render_message_id="m0")
    got = api.get(f"/v1/jobs/{pid(rendered)}", headers=acme).json()
    assert got["state"] == "queued" and got["waiting_for"] == "a worker with Chromium"
    listed = api.get("/v1/dealerships/acme/jobs", headers=acme).json()["items"]
    assert [j["waiting_for"] for j in listed] == ["a worker with Chromium"]
    assert api.get(f"/v1/jobs/{pid(plain)}", headers=op).json()["waiting_for"] is None
    doc = api.get("/v1/openapi.json").json()
    field = doc["components"]["schemas"]["JobSummary"]["properties"]["waiting_for"]
    assert "Chromium" in field["description"]
