"""The job API as an attacker would try it: another dealer's ids and paths, token tricks,
rate-limit dodges, secrets in logs. Every refusal is checked against the database too."""

from __future__ import annotations

import httpx
import pytest

from crawler.db import connect
from crawler.db import dealers as dealers_db
from crawler.db import tokens as tokens_db
from tests.api.conftest import Server, add_job, auth, pid

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(forecourt_env):
    """One API process: 60 requests per token per minute, debug logging; failed
    authentications not limited (tests/api/test_auth_failures.py covers that limit)."""
    started = Server({"FORECOURT_API_RATE_LIMIT": "60", "FORECOURT_API_RATE_WINDOW_S": "60",
                      "FORECOURT_API_AUTH_FAIL_LIMIT": "0", "FORECOURT_LOG_LEVEL": "DEBUG"})
    try:
        yield started.ready()
    finally:
        started.stop()


@pytest.fixture
def world(db):
    acme = dealers_db.create(db, slug="acme", name="Acme", website_url="https://acme.test/")
    bolt = dealers_db.create(db, slug="bolt", name="Bolt", website_url="https://bolt.test/")
    db.execute("DELETE FROM api_tokens")
    tokens = {"acme": tokens_db.create(db, "dealer", acme.id, "acme")[1],
              "bolt": tokens_db.create(db, "dealer", bolt.id, "bolt")[1],
              "ops": tokens_db.create(db, "operator", None, "ops")[1]}
    return {"db": db, "acme": acme, "bolt": bolt, "tokens": tokens,
            "bolt_job": add_job(db, bolt.id, state="dead", error="secret bolt failure"),
            "acme_job": add_job(db, acme.id)}


def _client(server):
    return httpx.Client(base_url=server.url, timeout=30)


def _no_5xx_no_leak(resp: httpx.Response, *secrets: str) -> None:
    assert resp.status_code < 500, (resp.request.url, resp.status_code, resp.text)
    assert "Traceback" not in resp.text
    for s in secrets:
        assert s not in resp.text, (resp.request.url, resp.text)


def test_another_dealers_resources_cannot_be_reached_by_id_or_path_tricks(server, world):
    bolt_job, acme_job = world["bolt_job"], world["acme_job"]
    acme = auth(world["tokens"]["acme"])
    paths = [
        f"/v1/jobs/{pid(bolt_job)}", f"/v1/jobs/{pid(bolt_job)}/", f"/v1/jobs/0{bolt_job}",
        f"/v1/jobs/{pid(bolt_job)}.0", f"/v1/jobs/+{bolt_job}", f"/v1/jobs/{pid(bolt_job)}%20",
        f"/v1/jobs/{pid(acme_job)}/../{bolt_job}", f"/v1/jobs/{pid(acme_job)}%2f..%2f{bolt_job}",
        f"/v1/jobs/{pid(bolt_job)} OR 1=1", f"/v1/jobs/{pid(acme_job)};{bolt_job}",
        "/v1/jobs/-1", "/v1/jobs/0", "/v1/jobs/1e3", "/v1/jobs/99999999999999999999",
        "/v1/jobs/9223372036854775808", "/v1/jobs/%00",
        "/v1/dealerships/bolt/jobs", "/v1/dealerships/BOLT/jobs", "/v1/dealerships/bolt%00/jobs",
        "/v1/dealerships/acme/../bolt/jobs", "/v1/dealerships/acme%2f..%2fbolt/jobs",
        "/v1/dealerships/%2e%2e/bolt/jobs", "/v1/dealerships/bolt/dead-letters",
        "/v1/dealerships/bolt/inventory", "/v1/dealerships/acme/jobs?dealership=bolt",
        "/v1/dealerships/acme/jobs?dealership_id=2&state=dead",
        "/v1/dealerships/acme%20/jobs", "/v1/dealerships/acme'--/jobs",
        "//v1/dealerships/bolt/jobs", "/v1//jobs/" + str(bolt_job),
    ]
    with _client(server) as api:
        for path in paths:
            resp = api.get(path, headers=acme)
            _no_5xx_no_leak(resp, "secret bolt failure", '"bolt"')
            if resp.status_code == 200:  # only ever acme's own data
                body = resp.json()
                items = body.get("items", [body]) if isinstance(body, dict) else body
                assert all(i.get("dealership", "acme") == "acme" for i in items), path
                assert all(i.get("id") != bolt_job for i in items), path
        for path in (f"/v1/jobs/{pid(bolt_job)}/cancel", f"/v1/jobs/{pid(bolt_job)}/replay",
                     f"/v1/jobs/{pid(acme_job)}/../{bolt_job}/replay",
                     "/v1/dealerships/bolt/jobs", "/v1/dealerships/acme/../bolt/jobs"):
            resp = api.post(path, headers=acme, json={"kind": "crawl"})
            _no_5xx_no_leak(resp, "secret bolt failure")
            assert resp.status_code in (404, 405, 422), (path, resp.status_code)
    # nothing happened to bolt: its dead job is still dead and nothing new was queued
    rows = world["db"].execute("SELECT id, state FROM jobs WHERE dealership_id = %s",
                               (world["bolt"].id,)).fetchall()
    assert [(r["id"], r["state"]) for r in rows] == [(bolt_job, "dead")]


def test_forged_malformed_and_revoked_tokens_are_refused(server, world):
    db, tokens = world["db"], world["tokens"]
    acme_tok, bolt_tok, ops_tok = tokens["acme"], tokens["bolt"], tokens["ops"]
    prefix_a, secret_b = acme_tok.split("_")[1], bolt_tok.split("_", 2)[2]
    job = world["acme_job"]
    forged = {
        "spliced": {"Authorization": f"Bearer fct_{prefix_a}_{secret_b}"},
        "truncated": auth(acme_tok[:-1]),
        "extended": auth(acme_tok + "A"),
        "case": auth(acme_tok.upper()),
        "prefix only": auth(f"fct_{prefix_a}_"),
        "empty bearer": {"Authorization": "Bearer"},
        "basic": {"Authorization": "Basic " + acme_tok},
        "utf-8": {"Authorization": ("Bearer fct_" + "\u00e9" * 12 + "_x").encode()},
        "huge": auth("fct_" + "A" * 12 + "_" + "B" * 60_000),
        "sql": auth("fct_' OR '1'='1_' OR '1'='1"),
        "in query": {},
    }
    with _client(server) as api:
        for name, headers in forged.items():
            url = f"/v1/jobs/{pid(job)}" + (f"?access_token={acme_tok}" if name == "in query"
                                       else "")
            resp = api.get(url, headers=headers)
            _no_5xx_no_leak(resp, acme_tok)
            assert resp.status_code in (400, 401, 431), (name, resp.status_code, resp.text)
        # the real ones work, then stop working once revoked (operator included)
        assert api.get(f"/v1/jobs/{pid(job)}", headers=auth(acme_tok)).status_code == 200
        assert api.get(f"/v1/jobs/{pid(job)}", headers=auth(ops_tok)).status_code == 200
        for t in tokens_db.list_all(db):
            if t.role == "operator":
                tokens_db.revoke(db, t.id)
        refused = [api.get(f"/v1/jobs/{pid(job)}", headers=auth(ops_tok)).status_code
                   for _ in range(50)]
        assert refused[-1] == 401
    # a dealer's tokens die with the dealership
    db.execute("DELETE FROM dealerships WHERE id = %s", (world["acme"].id,))
    with _client(server) as api:
        assert api.get("/v1/dealerships/acme/jobs", headers=auth(acme_tok)).status_code in (
            401, 404)
    stored = " ".join(str(r) for r in db.execute("SELECT * FROM api_tokens").fetchall())
    assert bolt_tok not in stored and secret_b not in stored


def test_two_authorization_headers_are_refused_as_ambiguous_on_every_route(server, world):
    """A request with two Authorization headers was served as the first one's bearer, the
    second ignored: a proxy or client that adds its own header beside the caller's decided
    who the caller was without a word. Ambiguous credentials answer 400 problem+json on
    every route that authenticates, whichever tokens they are, and nothing is done."""
    db, tokens = world["db"], world["tokens"]
    acme_tok, ops_tok = tokens["acme"], tokens["ops"]
    queued = add_job(db, world["acme"].id, state="queued")
    dead = add_job(db, world["acme"].id, state="dead", error="gone")
    pairs = {"dealer then operator": (acme_tok, ops_tok),
             "unknown then dealer": ("fct_AAAAAAAAAAAA_nope", acme_tok),
             "the same twice": (acme_tok, acme_tok)}
    requests = [("GET", f"/v1/jobs/{pid(queued)}", {}), ("HEAD", f"/v1/jobs/{pid(queued)}", {}),
                ("GET", f"/v1/jobs/{pid(queued)}?wait=5&since=0", {}),
                ("POST", f"/v1/jobs/{pid(queued)}/cancel", {}),
                ("POST", f"/v1/jobs/{pid(dead)}/replay", {}),
                ("POST", "/v1/dealerships/acme/jobs", {"json": {"kind": "crawl"}}),
                ("POST", "/v1/dealerships/acme/jobs",  # a malformed body: 400 before 422
                 {"content": b"{nope", "headers": {"Content-Type": "application/json"}}),
                ("GET", "/v1/dealerships/acme/jobs", {}),
                ("GET", "/v1/dealerships/acme/dead-letters", {}),
                ("GET", "/v1/dealerships/acme/inventory", {}),
                ("GET", "/metrics", {})]
    with _client(server) as api:
        for name, (first, second) in pairs.items():
            for method, path, kw in requests:
                headers = [("Authorization", f"Bearer {first}"),
                           ("Authorization", f"Bearer {second}"),
                           *kw.get("headers", {}).items()]
                resp = api.request(method, path, headers=headers,
                                   **{k: v for k, v in kw.items() if k != "headers"})
                assert resp.status_code == 400, (name, method, path, resp.text)
                assert resp.headers["content-type"].startswith("application/problem+json")
                if method != "HEAD":
                    body = resp.json()
                    assert body["type"] == "urn:forecourt:problem:ambiguous-credentials"
                    assert "Authorization" in body["detail"]
                _no_5xx_no_leak(resp, acme_tok, ops_tok)
        # one header still works
        assert api.get(f"/v1/jobs/{pid(queued)}", headers=auth(acme_tok)).status_code == 200
    rows = db.execute("SELECT id, state, cancel_requested_at FROM jobs WHERE dealership_id = %s"
                      " ORDER BY id", (world["acme"].id,)).fetchall()
    assert [(r["id"], r["state"]) for r in rows] == [
        (world["acme_job"], "succeeded"), (queued, "queued"), (dead, "dead")]


def test_rate_limit_counts_per_token_however_it_is_spelled(server, world):
    acme_tok, bolt_tok = world["tokens"]["acme"], world["tokens"]["bolt"]
    spellings = [{"Authorization": f"Bearer {acme_tok}"},
                 {"Authorization": f"bearer {acme_tok}"},
                 {"Authorization": f"Bearer   {acme_tok}"},
                 {"Authorization": f"BEARER {acme_tok}"}]
    with _client(server) as api:
        codes = [api.get("/v1/dealerships/acme/jobs", headers=spellings[i % 4]).status_code
                 for i in range(64)]
        assert codes[:60] == [200] * 60 and set(codes[60:]) == {429}, codes
        limited = api.get("/v1/dealerships/acme/jobs", headers=spellings[0])
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.headers["content-type"].startswith("application/problem+json")
        # another dealer's token is not affected
        assert api.get("/v1/dealerships/bolt/jobs", headers=auth(bolt_tok)).status_code == 200


def test_tokens_never_reach_the_api_log(server, world):
    acme_tok = world["tokens"]["acme"]
    with _client(server) as api:
        api.get(f"/v1/jobs/{pid(world['acme_job'])}", headers=auth(acme_tok))
        api.get("/v1/jobs/1", headers=auth(acme_tok[:-3] + "zzz"))
        api.get("/v1/dealerships/acme/jobs", headers={"Authorization": "Bearer " + acme_tok,
                                                      "X-Api-Key": acme_tok})
    log = server.logs()
    assert acme_tok not in log and acme_tok.split("_", 2)[2] not in log


def test_readiness_and_metrics_leak_no_configuration_secrets(server, world):
    ops = auth(world["tokens"]["ops"])
    with _client(server) as api:
        for path in ("/healthz", "/readyz", "/metrics", "/v1/openapi.json"):
            resp = api.get(path, headers=ops if path == "/metrics" else {})
            assert resp.status_code == 200, (path, resp.text)
            _no_5xx_no_leak(resp, "postgresql://", "unix://", "redis://",
                            world["tokens"]["ops"])
        # fleet-wide figures are not a dealer's, nor anyone's without a token
        for path in ("/metrics", "/metrics/", "//metrics", "/METRICS", "/metrics?x=1",
                     "/v1/../metrics", "/v1/metrics"):
            for headers in ({}, auth(world["tokens"]["acme"])):
                resp = api.get(path, headers=headers)
                _no_5xx_no_leak(resp, "forecourt_jobs", "forecourt_dealers")
                assert resp.status_code in (401, 403, 404), (path, resp.status_code)
    with connect() as conn:
        assert conn.execute("SELECT count(*) AS n FROM jobs").fetchone()["n"] == 2
