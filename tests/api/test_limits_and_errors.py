"""Limits (per-token rate limit in Redis across API processes, request size) and problem+json
error bodies for every kind of failure, never a stack trace."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx

from tests.api.conftest import (
    SHORT_BODY_TIMEOUT_S,
    add_job,
    assert_problem,
    auth,
    metrics_text,
    pid,
    raw_request,
    slow_body,
)


def test_rate_limit_holds_across_processes_with_429_and_retry_after(servers, world):
    """Two API processes sharing Redis, each allowing 5 requests per token per minute."""
    job = add_job(world["db"], world["acme"].id)
    acme, bolt = auth(world["tokens"]["acme"]), auth(world["tokens"]["bolt"])
    a, b = (httpx.Client(base_url=servers[n].url, timeout=10) for n in ("limited_a", "limited_b"))
    with a, b:
        statuses = [c.get(f"/v1/jobs/{pid(job)}", headers=acme).status_code
                    for c in (a, b, a, b, a)]
        assert statuses == [200] * 5
        for client in (a, b):
            over = client.get(f"/v1/jobs/{pid(job)}", headers=acme)
            body = assert_problem(over, 429)
            assert body["type"].endswith("rate-limited")
            assert 1 <= int(over.headers["retry-after"]) <= 60
        # the limit is per token: another dealer's token is unaffected
        other = add_job(world["db"], world["bolt"].id)
        assert b.get(f"/v1/jobs/{pid(other)}", headers=bolt).status_code == 200


def test_oversized_bodies_are_refused_with_413(api, world):
    acme = auth(world["tokens"]["acme"])
    big = b'{"kind": "crawl", "pad": "' + b"x" * 40_000 + b'"}'
    declared = api.post("/v1/dealerships/acme/jobs", content=big,
                        headers=acme | {"Content-Type": "application/json"})
    assert assert_problem(declared, 413)["type"] == "urn:forecourt:problem:too-large"

    def chunks():
        for _ in range(40):
            yield b"x" * 1000

    streamed = api.post("/v1/dealerships/acme/jobs", content=chunks(),
                        headers=acme | {"Content-Type": "application/json"})
    assert "content-length" not in streamed.request.headers, "sent chunked"
    body = assert_problem(streamed, 413)
    assert body["type"] == "urn:forecourt:problem:too-large", "as a declared one is"
    assert body["title"] == "Request Entity Too Large"
    assert world["db"].execute("SELECT count(*) AS n FROM jobs").fetchone()["n"] == 0


def chunked_post(url: str, path: str, token: str, total: int, method: str = "POST") -> dict:
    """POST (or `method`) `path` with a chunked body of `total` bytes over a raw socket (the
    way a client streams a body whose size it does not declare): one thread sends while this
    one reads the answer, then asks GET /healthz on the same connection. Returns the
    answer's status, headers and body, the bytes the sender got out, whether it sent the
    whole body, and the second request's status (None: the server had closed the connection)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n".encode())
    sent = {"bytes": 0, "whole": False}

    def send() -> None:
        chunk = b"x" * 8192
        try:
            while sent["bytes"] < total:
                piece = chunk[:total - sent["bytes"]]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent["bytes"] += len(piece)
            sock.sendall(b"0\r\n\r\n")
            sent["whole"] = True
        except OSError:  # the server closed the connection
            pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    with sock:
        reader = sock.makefile("rb")
        status = int(reader.readline().split()[1])
        headers = {}
        while (line := reader.readline().strip()):
            name, _, value = line.decode().partition(":")
            headers[name.lower()] = value.strip()
        body = reader.read(int(headers["content-length"]))
        sender.join(60)
        assert not sender.is_alive(), "the sender is stuck: the server neither reads nor closes"
        second = None
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            if first := reader.readline():
                second = int(first.split()[1])
        except OSError:
            pass
    return {"status": status, "headers": headers, "body": body, "sent": sent["bytes"],
            "whole": sent["whole"], "second": second}


def test_a_chunked_body_over_the_limit_is_refused_by_routes_that_take_none(api, api_server,
                                                                             world):
    """Cancel and replay take no body. An oversized body declared by Content-Length was
    refused 413 before they ran, but a chunked one was never read: cancel answered 200 (the
    job cancelled), replay 202, while the server went on reading and discarding the body,
    however long, on a connection it kept open. Now every POST body over the limit answers
    413 `too-large`, declared or chunked, before the route runs: the server reads at most
    the limit and closes the connection rather than swallow the rest. A body within the
    limit is read and ignored, and the connection stays usable."""
    db, op = world["db"], world["tokens"]["operator"]
    queued = add_job(db, world["acme"].id, state="queued")
    dead = add_job(db, world["bolt"].id, kind="feed", state="dead")
    huge = 64 * 1024 * 1024  # far more than the sockets' buffers hold
    for path in (f"/v1/jobs/{pid(queued)}/cancel", f"/v1/jobs/{pid(dead)}/replay",
                 "/v1/dealerships/acme/jobs"):  # which reads its body: refused as early
        got = chunked_post(api_server.url, path, op, huge)
        assert got["status"] == 413, got
        assert got["headers"]["content-type"].startswith("application/problem+json")
        problem = json.loads(got["body"])
        assert problem["type"] == "urn:forecourt:problem:too-large", problem
        assert problem["instance"] == path
        assert got["headers"].get("connection") == "close", got["headers"]
        assert not got["whole"] and got["sent"] < huge, "the server stopped reading"
        assert got["second"] is None, "and closed the connection"
    states = db.execute("SELECT id, state, replayed_as FROM jobs ORDER BY id").fetchall()
    assert [(r["id"], r["state"], r["replayed_as"]) for r in states] == \
        [(queued, "queued", None), (dead, "dead", None)]
    # within the limit: read, ignored, answered as without a body, the connection kept
    got = chunked_post(api_server.url, f"/v1/jobs/{pid(queued)}/cancel", op, 4000)
    assert got["status"] == 200 and json.loads(got["body"])["state"] == "cancelled", got
    assert got["whole"] and got["second"] == 200, got


def test_a_body_over_the_limit_is_refused_whatever_the_method_and_before_authentication(
        api, api_server, world):
    """A GET's body (and any body sent with a token the API refuses) went unread: uvicorn
    read and discarded it, however long, on a connection it kept. Now a body over the limit
    answers 413 and closes the connection whatever the method, before authentication; a
    GET's body within the limit is still ignored."""
    db, op = world["db"], world["tokens"]["operator"]
    job = add_job(db, world["acme"].id)
    huge = 64 * 1024 * 1024
    for method, path, token in (("GET", f"/v1/jobs/{pid(job)}", op),
                                ("GET", "/healthz", op),
                                ("DELETE", f"/v1/jobs/{pid(job)}", op),
                                ("POST", "/v1/dealerships/acme/jobs", "fc_not_a_token")):
        got = chunked_post(api_server.url, path, token, huge, method=method)
        assert got["status"] == 413, (method, path, got)
        assert json.loads(got["body"])["type"] == "urn:forecourt:problem:too-large"
        assert not got["whole"] and got["sent"] < huge, "the server stopped reading"
        assert got["second"] is None, "and closed the connection"
    declared = api.request("GET", f"/v1/jobs/{pid(job)}", content=b"x" * 40_000, headers=auth(op))
    assert assert_problem(declared, 413)["type"] == "urn:forecourt:problem:too-large"
    small = api.request("GET", f"/v1/jobs/{pid(job)}", content=b"x" * 4000, headers=auth(op))
    assert small.status_code == 200 and small.json()["id"] == pid(job)


def test_a_body_that_does_not_arrive_in_time_is_a_408_problem(servers, world):
    """A client that declared a body and sent only part of it (or dribbles a chunked one)
    held its connection and a server task for as long as it liked: nothing but the socket's
    end stopped the wait. Now the body must be whole within FORECOURT_API_BODY_TIMEOUT_S of
    the request's start (the no_redis server: SHORT_BODY_TIMEOUT_S): 408 `body-timeout`
    problem+json, the connection closed, nothing recorded."""
    url, op = servers["no_redis"].url, world["tokens"]["operator"]
    started = time.monotonic()
    got, closed = slow_body(url, "POST", "/v1/dealerships/acme/jobs", op)
    assert time.monotonic() - started >= SHORT_BODY_TIMEOUT_S, "not before the limit"
    problem = assert_problem(got, 408)
    assert problem["type"] == "urn:forecourt:problem:body-timeout"
    assert problem["instance"] == "/v1/dealerships/acme/jobs"
    assert "FORECOURT_API" not in problem["detail"] and "send it at once" in problem["detail"]
    assert got.headers["connection"] == "close" and closed
    chunked, closed = raw_request(
        url, f"POST /v1/dealerships/acme/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
             f"{op}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked",
        b"5\r\n{\"kin\r\n")  # one chunk, then nothing
    assert assert_problem(chunked, 408)["type"] == "urn:forecourt:problem:body-timeout"
    assert closed
    assert world["db"].execute("SELECT count(*) AS n FROM jobs").fetchone()["n"] == 0
    # a whole body on the same server is answered as usual (Redis is down there: 503)
    whole, _ = raw_request(
        url, f"POST /v1/dealerships/acme/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
             f"{op}\r\nContent-Type: application/json\r\nContent-Length: 17",
        b'{"kind": "crawl"}')
    assert whole.status_code == 503, whole.text


def test_a_request_the_server_cannot_parse_is_a_400_problem(api_server, world):
    """A control character in a header (or a malformed request line) never reaches the
    application: uvicorn answered its own plain-text 400 "Invalid HTTP request received.",
    the one answer not in problem+json. Now it is a 400 problem, the connection closed."""
    host, port = api_server.url.removeprefix("http://").split(":")
    op = world["tokens"]["operator"].encode()
    for request in (b"GET /v1/jobs/1 HTTP/1.1\r\nHost: x\r\nX-Note: a\x01b\r\n\r\n",
                    b"GET /v1/jobs/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + op
                    + b"\x7f\r\n\r\n",
                    b"GET /v1/jobs/\x01 HTTP/1.1\r\nHost: x\r\n\r\n"):
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):  # until the server closes the connection
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        assert lines[0] == "HTTP/1.1 400 Bad Request", answer
        assert headers["content-type"] == "application/problem+json", answer
        assert headers["connection"] == "close"
        problem = json.loads(body)
        assert problem["status"] == 400 and problem["title"] == "Bad Request", problem
        assert {"type", "detail", "instance"} <= set(problem), problem
        assert "not valid HTTP" in problem["detail"], problem


def test_unknown_routes_wrong_methods_and_bad_input_are_problems(api, world):
    acme = auth(world["tokens"]["acme"])
    assert assert_problem(api.get("/v1/nothing-here", headers=acme), 404)["type"] == "about:blank"
    wrong = api.delete("/v1/jobs/1", headers=acme)
    assert_problem(wrong, 405)
    assert "GET" in wrong.headers["allow"]
    # a job id that is no job's, malformed or not, is unknown: 404 (tests/api/test_public_ids)
    for bad_id in ("not-a-number", "99999999999999999999"):
        assert assert_problem(api.get(f"/v1/jobs/{bad_id}", headers=acme), 404)["detail"] \
            == "no such job"
    bad_json = api.post("/v1/dealerships/acme/jobs", content=b"{nope",
                        headers=acme | {"Content-Type": "application/json"})
    assert_problem(bad_json, 422)
    assert_problem(api.get("/v1/dealerships/Not_A_Slug/jobs", headers=acme), 422)


def test_malformed_json_says_what_is_wrong_and_where(api, world):
    """FastAPI's own detail was `body.16: JSON decode error`: the character offset read as
    a field of the body, and not a word of what was wrong."""
    acme = auth(world["tokens"]["acme"])
    body = assert_problem(api.post("/v1/dealerships/acme/jobs", content=b'{"kind":"feed"} xx',
                                   headers=acme | {"Content-Type": "application/json"}), 422)
    assert body["type"].endswith(":validation")
    assert body["detail"] == "body: JSON decode error: Extra data at character 16"
    assert body["errors"] == [{"loc": ["body"],
                               "msg": "JSON decode error: Extra data at character 16"}]


def test_an_unexpected_error_is_a_500_problem_the_ui_can_read_and_is_logged(api, api_server,
                                                                           world):
    """A job record the API cannot represent (counters must be integers) fails the request
    unexpectedly: the 500 problem carries the CORS headers like any answer, and the
    traceback is in the log, not in the answer."""
    job = add_job(world["db"], world["acme"].id, counters={"items": "lots"})
    resp = api.get(f"/v1/jobs/{pid(job)}", headers=auth(world["tokens"]["acme"])
                   | {"Origin": "https://ui.example"})
    body = assert_problem(resp, 500)
    assert body["type"] == "urn:forecourt:problem:internal"
    assert body["instance"] == f"/v1/jobs/{pid(job)}"
    assert resp.headers["access-control-allow-origin"] == "https://ui.example"
    assert "etag" in resp.headers["access-control-expose-headers"].lower()
    logged = [line for line in api_server.logs().splitlines()
              if f"unhandled error on GET /v1/jobs/{pid(job)}" in line]
    assert len(logged) == 1 and "Traceback" in logged[0] and "ValidationError" in logged[0]


def test_head_answers_like_get_without_a_body(api, world):
    """Load balancers and monitors probe with HEAD; a UI may check an ETag with it."""
    assert api.head("/healthz").status_code == 200
    acme = auth(world["tokens"]["acme"])
    job = add_job(world["db"], world["acme"].id)
    got = api.get(f"/v1/jobs/{pid(job)}", headers=acme)
    head = api.head(f"/v1/jobs/{pid(job)}", headers=acme)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == got.headers["etag"]
    assert head.headers["content-length"] == str(len(got.content))
    assert api.head(f"/v1/jobs/{pid(job)}", headers=acme
                    | {"If-None-Match": got.headers["etag"]}).status_code == 304
    refused = api.head(f"/v1/jobs/{pid(job)}")
    assert refused.status_code == 401 and refused.content == b""
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert api.head(f"/v1/jobs/{pid(job + 1)}", headers=acme).status_code == 404
    wrong = api.delete(f"/v1/jobs/{pid(job)}", headers=acme)
    assert_problem(wrong, 405)
    assert wrong.headers["allow"] == "GET, HEAD"
    assert api.head(f"/v1/jobs/{pid(job)}/cancel", headers=acme).headers["allow"] == "POST"
    assert 'method="HEAD",route="/v1/jobs/{job_id}",status="200"' in metrics_text(api)
    assert world["db"].execute("SELECT state FROM jobs WHERE id = %s",
                               (job,)).fetchone()["state"] == "succeeded"


def test_a_405_allows_every_method_of_its_path(api, world):
    """RFC 9110: a 405's Allow lists the resource's methods. The jobs of a dealership are
    read with GET (and HEAD) and triggered with POST, two routes on one path: the Allow of
    the first route alone sent a client (and the OpenAPI checker) to POST only."""
    acme = auth(world["tokens"]["acme"])
    for method in ("DELETE", "PUT", "PATCH"):
        wrong = api.request(method, "/v1/dealerships/acme/jobs", headers=acme)
        assert_problem(wrong, 405)
        assert wrong.headers["allow"] == "GET, HEAD, POST", method
    assert api.delete("/v1/jobs/1", headers=acme).headers["allow"] == "GET, HEAD"


def test_a_trailing_slash_is_a_404_problem_not_a_redirect(api, world):
    """A redirect would point at the URL uvicorn saw (plain http behind a TLS load balancer),
    which the https UI cannot follow."""
    acme = auth(world["tokens"]["acme"])
    job = add_job(world["db"], world["acme"].id)
    for path in (f"/v1/jobs/{pid(job)}/", "/v1/dealerships/acme/jobs/", "/healthz/"):
        assert assert_problem(api.get(path, headers=acme), 404)["detail"] == f"no route {path}"
    resp = api.post("/v1/dealerships/acme/jobs/", headers=acme, json={"kind": "crawl"})
    assert_problem(resp, 404)
    assert world["db"].execute("SELECT count(*) AS n FROM jobs").fetchone()["n"] == 1


def test_a_body_not_sent_as_json_is_a_415_problem(api, world):
    """fetch() with a string body and no Content-Type sends text/plain: the answer names the
    missing header instead of calling a good JSON object invalid."""
    acme = auth(world["tokens"]["acme"])
    url, body = "/v1/dealerships/acme/jobs", b'{"kind": "crawl"}'
    for content_type in ("text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                         None):
        headers = acme | ({"Content-Type": content_type} if content_type else {})
        resp = api.post(url, content=body, headers=headers)
        problem = assert_problem(resp, 415)
        assert problem["type"] == "urn:forecourt:problem:unsupported-media-type"
        assert "Content-Type: application/json" in problem["detail"]
        assert resp.headers["accept-post"] == "application/json"
    assert world["db"].execute("SELECT count(*) AS n FROM jobs").fetchone()["n"] == 0
    assert_problem(api.post(url, content=body, headers={"Content-Type": "text/plain"}), 401)
    assert_problem(api.post(url, headers=acme), 422)  # no body at all: the body is required
    sent = api.post(url, content=body,
                    headers=acme | {"Content-Type": "application/json; charset=utf-8"})
    assert sent.status_code == 202, sent.text
