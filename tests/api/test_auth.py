"""Bearer tokens: required, hashed, revocable; a dealer token sees its own dealership only and
another dealership's resources answer exactly like missing ones (404, never 403)."""

from __future__ import annotations

import subprocess

from crawler.db import tokens as tokens_db
from tests.api.conftest import FORECOURT, add_job, assert_problem, auth, eventually, pid


def test_requests_without_a_valid_token_are_401_problems(api, world):
    job = add_job(world["db"], world["acme"].id)
    missing = assert_problem(api.get(f"/v1/jobs/{pid(job)}"), 401)
    assert missing["type"].endswith("unauthorized")
    assert api.get(f"/v1/jobs/{pid(job)}").headers["www-authenticate"].startswith("Bearer")
    good = world["tokens"]["acme"]
    altered = good[:-2] + ("yy" if good.endswith("xx") else "xx")  # never the token itself
    for bad in ("nonsense", "fct_000000000000_wrong", altered):
        resp = api.get(f"/v1/jobs/{pid(job)}", headers=auth(bad))
        assert_problem(resp, 401)
        assert 'error="invalid_token"' in resp.headers["www-authenticate"]
    assert_problem(api.get(f"/v1/jobs/{pid(job)}", headers={"Authorization": "Basic eDp5"}), 401)


def test_tokens_are_stored_hashed_and_revocation_takes_effect_at_once(api, world):
    db, token = world["db"], world["tokens"]["acme"]
    stored = db.execute("SELECT prefix, secret_hash FROM api_tokens").fetchall()
    secret = token.split("_", 2)[2]  # the secret itself may hold underscores
    assert all(token not in str(r) and secret not in str(r) for r in stored)
    job = add_job(db, world["acme"].id)
    assert api.get(f"/v1/jobs/{pid(job)}", headers=auth(token)).status_code == 200
    record = next(t for t in tokens_db.list_all(db) if t.dealership_slug == "acme")
    assert record.last_used_at is not None
    tokens_db.revoke(db, record.id)
    assert_problem(eventually(lambda: api.get(f"/v1/jobs/{pid(job)}", headers=auth(token)), 401),
                   401)


def test_dealer_token_sees_only_its_own_jobs_and_others_look_missing(api, world):
    db = world["db"]
    own = add_job(db, world["acme"].id)
    other = add_job(db, world["bolt"].id, kind="feed")
    missing = other + 1000
    acme = auth(world["tokens"]["acme"])
    assert api.get(f"/v1/jobs/{pid(own)}", headers=acme).json()["dealership"] == "acme"
    hidden = assert_problem(api.get(f"/v1/jobs/{pid(other)}", headers=acme), 404)
    absent = assert_problem(api.get(f"/v1/jobs/{pid(missing)}", headers=acme), 404)
    assert hidden["detail"] == absent["detail"] == "no such job"
    assert {k: v for k, v in hidden.items() if k != "instance"} == \
           {k: v for k, v in absent.items() if k != "instance"}
    # acting on another dealer's job is refused the same way, and changes nothing
    for action in ("cancel", "replay"):
        assert_problem(api.post(f"/v1/jobs/{pid(other)}/{action}", headers=acme), 404)
    assert db.execute("SELECT state FROM jobs WHERE id = %s", (other,)).fetchone()["state"] \
        == "succeeded"


def test_dealer_token_cannot_reach_another_dealerships_collections(api, world):
    acme = auth(world["tokens"]["acme"])
    for path in ("/jobs", "/dead-letters", "/inventory"):
        hidden = assert_problem(api.get(f"/v1/dealerships/bolt{path}", headers=acme), 404)
        absent = assert_problem(api.get(f"/v1/dealerships/nobody{path}", headers=acme), 404)
        assert hidden["detail"] == "no dealership 'bolt'"
        assert absent["detail"] == "no dealership 'nobody'"
        assert api.get(f"/v1/dealerships/acme{path}", headers=acme).status_code == 200
    trigger = api.post("/v1/dealerships/bolt/jobs", json={"kind": "feed"}, headers=acme)
    assert_problem(trigger, 404)
    assert world["db"].execute("SELECT count(*) AS n FROM jobs").fetchone()["n"] == 0


def test_operator_token_sees_every_dealership(api, world):
    db = world["db"]
    jobs = [add_job(db, world["acme"].id), add_job(db, world["bolt"].id, kind="feed")]
    op = auth(world["tokens"]["operator"])
    assert [api.get(f"/v1/jobs/{pid(j)}", headers=op).json()["dealership"] for j in jobs] == \
        ["acme", "bolt"]
    for slug in ("acme", "bolt"):
        assert api.get(f"/v1/dealerships/{slug}/inventory", headers=op).status_code == 200
    assert_problem(api.get("/v1/dealerships/nobody/jobs", headers=op), 404)


def test_tokens_cli_creates_shows_once_lists_and_revokes(api, world):
    created = subprocess.run([FORECOURT, "tokens", "create", "--dealer", "acme", "--label",
                              "cli"], capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("fct_")
    job = add_job(world["db"], world["acme"].id)
    assert api.get(f"/v1/jobs/{pid(job)}", headers=auth(token)).status_code == 200
    listing = subprocess.run([FORECOURT, "tokens", "list"], capture_output=True, text=True,
                             timeout=60).stdout
    assert token not in listing and token.split("_")[1] in listing and "cli" in listing
    token_id = next(t.id for t in tokens_db.list_all(world["db"]) if t.label == "cli")
    revoked = subprocess.run([FORECOURT, "tokens", "revoke", str(token_id)],
                             capture_output=True, text=True, timeout=60)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert_problem(eventually(lambda: api.get(f"/v1/jobs/{pid(job)}", headers=auth(token)), 401),
                   401)


def test_a_request_without_a_valid_token_is_401_whatever_its_body(api, world):
    """Authentication comes before the body: a malformed JSON body (which FastAPI parses
    before any dependency runs) or one the schema refuses is a 401 to a caller without a
    valid token, so the API tells an unauthenticated caller nothing about its routes' bodies."""
    url = "/v1/dealerships/acme/jobs"
    json_header = {"Content-Type": "application/json"}
    for headers in ({}, auth("fct_000000000000_wrong")):
        for body in (b"{not json", b'{"kind": "nonsense"}', b"[]"):
            resp = api.post(url, content=body, headers={**json_header, **headers})
            assert_problem(resp, 401)
            assert resp.headers["www-authenticate"].startswith("Bearer")
    token = world["tokens"]["acme"]  # with a valid token the body's fault is named (422)
    bad = assert_problem(api.post(url, content=b"{not json",
                                  headers={**json_header, **auth(token)}), 422)
    assert bad["type"].endswith("validation")
