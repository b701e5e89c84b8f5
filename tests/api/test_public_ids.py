"""Jobs are named to API clients by an opaque public id (a random UUID), never by the global
job number: with a handful of dealers, consecutive numbers and cursors that decode to them
told one dealer another's job count and timing."""

from __future__ import annotations

import base64
import binascii
import re
import subprocess
import uuid

from tests.api.conftest import FORECOURT, add_job, assert_problem, auth

OLD_CURSOR = re.compile(rb"\D?\d+")  # what a cursor was: "j" and the job number


def _public_id(db, job_id: int) -> str:
    return str(db.execute("SELECT public_id FROM jobs WHERE id = %s",
                          (job_id,)).fetchone()["public_id"])


def _decodings(cursor: str) -> list[bytes]:
    """What a dealer could make of a cursor: the text itself, and its base64 decodings."""
    found = [cursor.encode()]
    for decode in (base64.urlsafe_b64decode, base64.b64decode):
        try:
            found.append(decode(cursor + "=" * (-len(cursor) % 4)))
        except (binascii.Error, ValueError):
            pass
    return found


def test_a_dealer_learns_nothing_of_another_dealers_jobs_from_ids_or_cursors(api, world):
    acme, bolt = auth(world["tokens"]["acme"]), auth(world["tokens"]["bolt"])
    a1 = api.post("/v1/dealerships/acme/jobs", json={"kind": "crawl"}, headers=acme)
    api.post(f"/v1/jobs/{a1.json()['id']}/cancel", headers=acme)
    b1 = api.post("/v1/dealerships/bolt/jobs", json={"kind": "feed"}, headers=bolt)
    assert b1.status_code == 202, b1.text
    a2 = api.post("/v1/dealerships/acme/jobs", json={"kind": "crawl"}, headers=acme)
    assert a1.status_code == a2.status_code == 202, a2.text
    for resp in (a1, a2):
        job_id = resp.json()["id"]
        assert isinstance(job_id, str) and str(uuid.UUID(job_id)) == job_id
        assert resp.headers["location"] == f"/v1/jobs/{job_id}"
        assert "number" not in resp.json() or resp.json()["number"] is None
    numbers = [r["id"] for r in world["db"].execute("SELECT id FROM jobs ORDER BY id")]
    for resp in (a1, a2):  # no field but counts and the version is a number
        numeric = {k for k, v in resp.json().items() if type(v) is int}
        assert numeric <= {"attempts", "version"}, resp.text
    first, second = (uuid.UUID(r.json()["id"]).int for r in (a1, a2))
    assert abs(second - first) > 2**32, "random, not consecutive"
    page = api.get("/v1/dealerships/acme/jobs", params={"limit": 1}, headers=acme)
    cursor = page.json()["next_cursor"]
    assert cursor is not None
    assert not any(OLD_CURSOR.fullmatch(raw) for raw in _decodings(cursor)), cursor
    assert not any(str(n).encode() in raw for raw in _decodings(cursor) for n in numbers)
    rest = api.get("/v1/dealerships/acme/jobs", params={"limit": 1, "cursor": cursor},
                   headers=acme).json()
    assert [j["id"] for j in rest["items"]] == [a1.json()["id"]]


def test_another_dealers_job_a_random_uuid_and_a_malformed_id_answer_the_same_404(api, world):
    db, acme = world["db"], auth(world["tokens"]["acme"])
    theirs = _public_id(db, add_job(db, world["bolt"].id, state="dead"))
    mine = add_job(db, world["acme"].id, state="succeeded")
    answers = {}
    for given in (theirs, str(uuid.uuid4()), "not-a-uuid", str(mine), "0", "%20",
                  "f" * 300):
        for method, suffix in (("GET", ""), ("POST", "/cancel"), ("POST", "/replay")):
            resp = api.request(method, f"/v1/jobs/{given}{suffix}", headers=acme)
            body = assert_problem(resp, 404)
            shape = {k: v for k, v in body.items() if k != "instance"}
            answers.setdefault((method, suffix), set()).add(
                (resp.headers["content-type"], repr(sorted(shape.items()))))
    for key, seen in answers.items():
        assert len(seen) == 1, (key, seen)
    waited = api.get(f"/v1/jobs/{theirs}", params={"wait": 0.2, "since": 0}, headers=acme)
    assert assert_problem(waited, 404)["detail"] == "no such job"
    assert api.get(f"/v1/jobs/{theirs}", headers=auth(world["tokens"]["operator"])
                   ).status_code == 200


def test_a_cursor_naming_another_dealers_job_or_none_is_an_invalid_cursor(api, world):
    db, acme = world["db"], auth(world["tokens"]["acme"])
    for _ in range(3):
        add_job(db, world["acme"].id)
    add_job(db, world["bolt"].id)
    bolt_page = api.get("/v1/dealerships/bolt/jobs", params={"limit": 1},
                        headers=auth(world["tokens"]["bolt"])).json()
    assert bolt_page["next_cursor"] is None
    add_job(db, world["bolt"].id)
    theirs = api.get("/v1/dealerships/bolt/jobs", params={"limit": 1},
                     headers=auth(world["tokens"]["bolt"])).json()["next_cursor"]
    assert theirs is not None
    details = set()
    for cursor in (theirs, str(uuid.uuid4()), "garbage",
                   base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")):
        body = assert_problem(api.get("/v1/dealerships/acme/jobs", params={"cursor": cursor},
                                      headers=acme), 400)
        assert body["type"].endswith("invalid-cursor")
        details.add(body["detail"])
    assert len(details) == 1


def test_cursor_paging_returns_every_job_once_in_order(api, world):
    db, aid = world["db"], world["acme"].id
    ids = [add_job(db, aid, state="failed" if i % 3 == 0 else "succeeded") for i in range(8)]
    add_job(db, world["bolt"].id)
    want = [_public_id(db, i) for i in sorted(ids, reverse=True)]
    acme = auth(world["tokens"]["acme"])
    for limit in (1, 3, 8):
        seen, cursor = [], None
        while True:
            params = {"limit": limit} | ({"cursor": cursor} if cursor else {})
            page = api.get("/v1/dealerships/acme/jobs", params=params, headers=acme).json()
            seen += [j["id"] for j in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == want
    failed = api.get("/v1/dealerships/acme/jobs", params={"state": "failed", "limit": 2},
                     headers=acme).json()
    rest = api.get("/v1/dealerships/acme/jobs", params={"state": "failed", "limit": 2,
                                                         "cursor": failed["next_cursor"]},
                   headers=acme).json()
    assert [j["id"] for j in failed["items"] + rest["items"]] == \
        [_public_id(db, ids[i]) for i in (6, 3, 0)]


def test_replay_points_at_the_new_jobs_public_id(api, world):
    db, acme = world["db"], auth(world["tokens"]["acme"])
    dead = _public_id(db, add_job(db, world["acme"].id, state="dead", error="site gone"))
    letters = api.get("/v1/dealerships/acme/dead-letters", headers=acme).json()["items"]
    assert [j["id"] for j in letters] == [dead]
    replayed = api.post(f"/v1/jobs/{dead}/replay", headers=acme)
    assert replayed.status_code == 202, replayed.text
    new = replayed.json()["id"]
    uuid.UUID(new)
    assert replayed.headers["location"] == f"/v1/jobs/{new}"
    assert api.get(f"/v1/jobs/{dead}", headers=acme).json()["replayed_as"] == new
    got = api.get(replayed.headers["location"], headers=acme)
    assert got.status_code == 200 and got.json()["id"] == new
    again = assert_problem(api.post(f"/v1/jobs/{dead}/replay", headers=acme), 409)
    assert again["detail"] == f"job {dead} was already replayed as job {new}"
    number = db.execute("SELECT id FROM jobs WHERE public_id = %s", (new,)).fetchone()["id"]
    assert str(number) not in again["detail"].replace(new, "").replace(dead, "")


def test_operators_see_the_job_number_and_dealers_do_not(api, world):
    db = world["db"]
    job = add_job(db, world["acme"].id, state="succeeded")
    public = _public_id(db, job)
    op = auth(world["tokens"]["operator"])
    mine = auth(world["tokens"]["acme"])
    ops = api.get(f"/v1/jobs/{public}", headers=op).json()
    assert ops["id"] == public and ops["number"] == job
    listed = api.get("/v1/dealerships/acme/jobs", headers=op).json()["items"]
    assert listed[0]["number"] == job
    dealer = api.get(f"/v1/jobs/{public}", headers=mine).json()
    assert dealer["id"] == public and dealer.get("number") is None
    listed = api.get("/v1/dealerships/acme/jobs", headers=mine).json()["items"]
    assert listed[0].get("number") is None


def test_inventory_names_the_last_run_by_its_public_id(api, world):
    db = world["db"]
    job = add_job(db, world["acme"].id, state="succeeded", verdict="healthy",
                  finished_at="2024-01-01T00:00:00Z")
    body = api.get("/v1/dealerships/acme/inventory", headers=auth(world["tokens"]["acme"]))
    assert body.json()["last_successful_run"]["job_id"] == _public_id(db, job), body.text


def test_jobs_show_finds_a_job_by_the_public_id_a_dealer_reports(world):
    db = world["db"]
    job = add_job(db, world["acme"].id, state="dead", error="site gone")
    public = _public_id(db, job)
    for args in (["jobs", "show", public], ["jobs", "show", public.upper()],
                 ["dlq", "show", public]):
        out = subprocess.run([FORECOURT, *args], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"Job {job}" in out.stdout and public in out.stdout, out.stdout
    out = subprocess.run([FORECOURT, "jobs", "show", str(job)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and public in out.stdout, out.stdout + out.stderr
    for bad in (str(uuid.uuid4()), "nonsense"):
        out = subprocess.run([FORECOURT, "jobs", "show", bad], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
