"""Property-based run of the OpenAPI document (schemathesis): generated requests, valid and
not, against the real server and database, must never get a 5xx nor a response (status,
content type, headers, body) that the document does not describe.

Each operation is one pytest test driving schemathesis' Hypothesis strategy (its own pytest
plugin does not run under pytest 9), with a bounded number of examples to stay fast.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from jobs.api.app import create_app
from jobs.api.problems import MEDIA_TYPE
from tests.api.conftest import (
    Relay,
    Server,
    add_job,
    assert_problem,
    auth,
    client_from,
    pid,
    slow_body,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
LABELS = [r.ok().label for r in
          schemathesis.openapi.from_dict(create_app().openapi()).get_all_operations()]


@pytest.fixture(scope="module")
def live_schema(api_server):
    """The document as the running server serves it."""
    return schemathesis.openapi.from_url(api_server.url + "/v1/openapi.json")


@pytest.mark.parametrize("label", LABELS)
def test_operation_conforms_to_the_openapi_document(live_schema, world, label):
    db, aid = world["db"], world["acme"].id
    real = {"GET": add_job(db, aid, state="succeeded", verdict="healthy",
                           counters={"items": 3, "upserted": 3},
                           report={"verdict": "healthy"}, started_at="2026-01-01T00:00:00Z",
                           finished_at="2026-01-01T00:01:00Z"),
            "POST": add_job(db, aid, state="dead", error="gone", errors=[{"error": "gone"}])}
    headers = auth(world["tokens"]["operator"])
    operation = live_schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is served"

    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(GenerationMode.POSITIVE)
           | operation.as_strategy(GenerationMode.NEGATIVE))
    def check(case):
        if case.query and "wait" in case.query:
            case.query["wait"] = 0  # a generated `wait` must not hold the run for 30 s
        case.call_and_validate(headers=headers, checks=CHECKS)
        # the same request aimed at resources that exist, so successful bodies are checked too
        params = dict(case.path_parameters or {})
        if params:
            if "slug" in params:
                params["slug"] = "acme"
            if "job_id" in params:
                params["job_id"] = real[case.method.upper()]
            case.path_parameters = params
            case.call_and_validate(headers=headers, checks=CHECKS)

    check()


def _cut_off(server) -> httpx.Client:
    """A client from an address the server has cut off (too many unknown tokens): 429 for
    any token on every authenticated route, until the window ends."""
    client = client_from(server, "127.0.0.77")
    for _ in range(3):
        assert_problem(client.get("/v1/jobs/1", headers=auth("no-such-token")), 401)
    return client


@pytest.fixture
def no_database(forecourt_env):
    """An API server that started against the session's PostgreSQL, reached through a relay
    then cut: every connection it held closed, every new one refused. A short pool timeout
    (FORECOURT_API_POOL_TIMEOUT_S), so a request waiting for a connection gives up at once."""
    relay = Relay(forecourt_env["database_url"])
    server = Server({"DATABASE_URL": relay.url, "FORECOURT_API_POOL_TIMEOUT_S": "0.2"})
    try:
        server.ready()
        relay.cut()
        yield server
    finally:
        server.stop()
        relay.cut()


def test_every_status_the_document_lists_is_one_a_request_gets(servers, no_database, world):
    """The document listed 400 for POST /v1/dealerships/{slug}/jobs, which only a body that
    is not UTF-8 or nests too deeply got (FastAPI's "There was an error parsing the body";
    malformed JSON and unknown kinds are 422), and no 413 for cancel and replay, which a
    body over the limit gets. Schemathesis above checks that every answer it provokes is
    documented; this checks both ways: for each operation, each documented status is
    produced by a real request here, and each status these requests get is documented."""
    db, aid = world["db"], world["acme"].id
    op = auth(world["tokens"]["operator"])
    main, down = (httpx.Client(base_url=servers[n].url, timeout=40) for n in ("main", "no_redis"))
    no_db = httpx.Client(base_url=no_database.url, timeout=40)
    cut = _cut_off(servers["limited_b"])
    slow = servers["no_redis"]  # a body must arrive within half a second there
    big = {"content": b"{" + b" " * 40_000 + b"}", "headers": op | {
        "Content-Type": "application/json"}}
    small = {**big, "content": b"{}"}

    def done() -> int:
        return add_job(db, aid, state="succeeded", verdict="healthy")

    def dead() -> int:
        return add_job(db, aid, state="dead", error="gone")

    def etag_of(path: str) -> dict[str, str]:
        return op | {"If-None-Match": main.get(path, headers=op).headers["etag"]}

    def trigger(**kw):
        return lambda: main.post("/v1/dealerships/acme/jobs", **kw)

    def fresh_trigger():
        db.execute("DELETE FROM jobs WHERE dealership_id = %s", (aid,))
        return main.post("/v1/dealerships/acme/jobs", json={"kind": "crawl"}, headers=op)

    def active_trigger():
        add_job(db, aid, state="queued")
        return main.post("/v1/dealerships/acme/jobs", json={"kind": "crawl"}, headers=op)

    def cancel_queued():
        db.execute("DELETE FROM jobs WHERE dealership_id = %s", (aid,))
        return main.post(f"/v1/jobs/{pid(add_job(db, aid, state='queued'))}/cancel", headers=op)

    def replay_dead():
        db.execute("DELETE FROM jobs WHERE dealership_id = %s", (aid,))
        return main.post(f"/v1/jobs/{pid(dead())}/replay", headers=op)

    def replay_down():
        db.execute("DELETE FROM jobs WHERE dealership_id = %s", (aid,))
        return down.post(f"/v1/jobs/{pid(dead())}/replay", headers=op)

    def gets(path: str, bad: str) -> dict:
        return {200: [lambda: main.get(path, headers=op),
                      lambda: main.request("GET", path, **small)],  # a GET's body is ignored
                304: [lambda: main.get(path, headers=etag_of(path))],
                401: [lambda: main.get(path)],
                404: [lambda: main.get(path.replace("acme", "nobody").replace(
                    "/jobs/", "/jobs/99999999") if "acme" in path or "/v1/jobs/" in path
                    else path, headers=op)],
                422: [lambda: main.get(bad, headers=op)],
                429: [lambda: cut.get(path, headers=op)],
                503: [lambda: no_db.get(path, headers=op)]}

    job_path = f"/v1/jobs/{pid(done())}"
    produce = {
        "GET /v1/jobs/{job_id}": gets(job_path, job_path + "?wait=-1"),
        "POST /v1/jobs/{job_id}/cancel": {
            200: [cancel_queued],
            401: [lambda: main.post(f"/v1/jobs/{pid(done())}/cancel")],
            404: [lambda: main.post("/v1/jobs/99999999/cancel", headers=op)],
            409: [lambda: main.post(f"/v1/jobs/{pid(done())}/cancel", headers=op)],
            413: [lambda: main.post(f"/v1/jobs/{pid(done())}/cancel", **big)],
            429: [lambda: cut.post(f"/v1/jobs/{pid(done())}/cancel", headers=op)],
            503: [lambda: no_db.post(f"/v1/jobs/{pid(done())}/cancel", headers=op)]},
        "POST /v1/jobs/{job_id}/replay": {
            202: [replay_dead],
            401: [lambda: main.post(f"/v1/jobs/{pid(dead())}/replay")],
            404: [lambda: main.post("/v1/jobs/99999999/replay", headers=op)],
            409: [lambda: main.post(f"/v1/jobs/{pid(done())}/replay", headers=op)],
            413: [lambda: main.post(f"/v1/jobs/{pid(dead())}/replay", **big)],
            429: [lambda: cut.post(f"/v1/jobs/{pid(dead())}/replay", headers=op)],
            503: [replay_down, lambda: no_db.post(f"/v1/jobs/{pid(dead())}/replay", headers=op)]},
        "POST /v1/dealerships/{slug}/jobs": {
            200: [active_trigger],
            202: [fresh_trigger],
            401: [trigger(json={"kind": "crawl"}),  # before anything about the body
                  trigger(content=b"\xff", headers={"Content-Type": "application/json"})],
            404: [lambda: main.post("/v1/dealerships/nobody/jobs", json={"kind": "crawl"},
                                    headers=op)],
            413: [trigger(**big)],
            415: [trigger(content=b'{"kind": "crawl"}', headers=op)],
            422: [trigger(json={"kind": "scrape"}, headers=op),
                  trigger(content=b"{nope", headers=op | {"Content-Type": "application/json"}),
                  # not UTF-8, or nested past what the parser recurses: not JSON either
                  trigger(content=b'{"kind": "\xff"}',
                          headers=op | {"Content-Type": "application/json"}),
                  trigger(content=b"[" * 5000, headers=op | {
                      "Content-Type": "application/json"})],
            429: [lambda: cut.post("/v1/dealerships/acme/jobs", json={"kind": "crawl"},
                                   headers=op)],
            503: [lambda: (db.execute("DELETE FROM jobs WHERE dealership_id = %s", (aid,)),
                           down.post("/v1/dealerships/acme/jobs", json={"kind": "crawl"},
                                     headers=op))[1],
                  lambda: no_db.post("/v1/dealerships/acme/jobs", json={"kind": "crawl"},
                                     headers=op)]},
        "GET /v1/dealerships/{slug}/jobs": {
            **gets("/v1/dealerships/acme/jobs", "/v1/dealerships/acme/jobs?limit=0"),
            400: [lambda: main.get("/v1/dealerships/acme/jobs?cursor=nope", headers=op)]},
        "GET /v1/dealerships/{slug}/dead-letters": gets("/v1/dealerships/acme/dead-letters",
                                                        "/v1/dealerships/A_B/dead-letters"),
        "GET /v1/dealerships/{slug}/inventory": gets("/v1/dealerships/acme/inventory",
                                                     "/v1/dealerships/A_B/inventory"),
        "GET /healthz": {200: [lambda: main.get("/healthz")]},
        "GET /readyz": {200: [lambda: main.get("/readyz")],
                        503: [lambda: down.get("/readyz"), lambda: no_db.get("/readyz")]},
        "GET /metrics": {200: [lambda: main.get("/metrics", headers=op)],
                         401: [lambda: main.get("/metrics")],
                         403: [lambda: main.get("/metrics",
                                                headers=auth(world["tokens"]["acme"]))],
                         429: [lambda: cut.get("/metrics", headers=op)],
                         503: [lambda: no_db.get("/metrics", headers=op)]},
    }
    for label, statuses in produce.items():  # BodyLimit answers before any route
        method, path = label.split(" ")
        path = path.replace("{job_id}", str(done())).replace("{slug}", "acme")
        statuses[413] = [lambda m=method, p=path: main.request(m, p, **big)]
        if 401 in statuses:  # every route that authenticates: two Authorization headers
            statuses.setdefault(400, []).append(
                lambda m=method, p=path: main.request(m, p, headers=[*op.items(), *op.items()]))
        statuses[408] = [lambda m=method, p=path: slow_body(slow.url, m, p,
                                                            world["tokens"]["operator"])[0]]
    doc = create_app().openapi()
    responses = {f"{method.upper()} {path}": op_["responses"]
                 for path, ops in doc["paths"].items() for method, op_ in ops.items()}
    documented = {label: {int(s) for s in answers} for label, answers in responses.items()}
    wrong = []
    try:
        assert set(documented) == set(produce), "every operation has its requests here"
        for label, statuses in produce.items():
            for status, requests in statuses.items():
                for request in requests:
                    got = request()
                    if got.status_code != status:
                        wrong.append(f"{label}: {got.status_code}, not {status}: {got.text}")
                        continue
                    answer = responses[label].get(str(status), {})
                    if (status >= 400 and MEDIA_TYPE in answer.get("content", {})
                            and not got.headers["content-type"].startswith(MEDIA_TYPE)):
                        wrong.append(f"{label}: {status} is not problem+json: {got.text}")
                    missing = [h for h in answer.get("headers", {}) if h not in got.headers]
                    if missing:
                        wrong.append(f"{label}: {status} without {sorted(missing)}")
            if documented[label] != set(statuses):
                wrong.append(f"{label} documents {sorted(documented[label])}, gets "
                             f"{sorted(statuses)}")
    finally:
        for client in (main, down, cut, no_db):
            client.close()
    assert not wrong, "\n".join(wrong)


def test_the_document_names_the_headers_a_ui_reads():
    """The README's polling rests on ETag, a trigger answers with Location and a 401 with
    WWW-Authenticate, but the document named none of them: a client generated from it had
    no ETag to send back. A counted request's answers tell the token's quota
    (RateLimit-*). Documented here, each is checked on real answers by
    test_every_status_the_document_lists_is_one_a_request_gets."""
    doc = create_app().openapi()
    missing = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                want = set()
                if path.startswith("/v1/") and status in ("200", "202", "304"):
                    want.add("ETag")
                if status == "202" or (method, path, status) == (
                        "post", "/v1/dealerships/{slug}/jobs", "200"):
                    want.add("Location")
                if status == "401":
                    want.add("WWW-Authenticate")
                if op.get("security") and (status == "429" or path.startswith("/v1/")
                                           and status in ("200", "202", "304")):
                    want |= {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}
                if lacking := want - set(answer.get("headers", {})):
                    missing.append(f"{method.upper()} {path} {status}: {sorted(lacking)}")
    assert not missing, "\n".join(missing)
