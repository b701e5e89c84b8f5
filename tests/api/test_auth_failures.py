"""Failed authentications are limited per client address, in Redis across API processes: a
client guessing tokens gets 429 after a few tries instead of a database look-up per guess,
while other addresses (valid tokens or not) are not affected. The address comes from
X-Forwarded-For only when the connecting peer is a trusted proxy (FORWARDED_ALLOW_IPS).

The limited servers allow 3 failures per address per minute. Each test uses addresses of its
own (127.0.0.0/8 is all this machine's), since a cut-off address stays so for the window."""

from __future__ import annotations

import httpx

from tests.api.conftest import add_job, assert_problem, auth, client_from, pid

BAD = "fct_000000000000_not-a-real-secret"


def _cut_off(resp: httpx.Response) -> None:
    body = assert_problem(resp, 429)
    assert body["type"].endswith("rate-limited")
    assert "failed authentications" in body["detail"], body["detail"]
    assert 1 <= int(resp.headers["retry-after"]) <= 60


def test_failed_authentications_from_one_address_are_cut_off_across_processes(servers, world):
    job = add_job(world["db"], world["acme"].id)
    acme, bolt = auth(world["tokens"]["acme"]), auth(world["tokens"]["bolt"])
    a, b = (client_from(servers[n], "127.0.0.2") for n in ("limited_a", "limited_b"))
    other = client_from(servers["limited_b"], "127.0.0.3")
    with a, b, other:
        assert a.get(f"/v1/jobs/{pid(job)}", headers=acme).status_code == 200  # now cached there
        # three guesses, spread over two processes: each one answered 401
        for client in (a, b, a):
            assert_problem(client.get(f"/v1/jobs/{pid(job)}", headers=auth(BAD)), 401)
        # the fourth, on either process: 429, and so is a valid token from that address,
        # whether its process has it cached or would look it up
        _cut_off(b.get(f"/v1/jobs/{pid(job)}", headers=auth(BAD)))
        _cut_off(a.get(f"/v1/jobs/{pid(job)}", headers=acme))
        _cut_off(b.get("/v1/dealerships/bolt/jobs", headers=bolt))
        # another address is not affected: valid tokens work, a bad one is a plain 401
        assert other.get(f"/v1/jobs/{pid(job)}", headers=acme).status_code == 200
        assert other.get("/v1/dealerships/bolt/jobs", headers=bolt).status_code == 200
        assert_problem(other.get(f"/v1/jobs/{pid(job)}", headers=auth(BAD)), 401)
        # a request without any token costs no look-up: still the 401 that asks for one
        assert_problem(a.get(f"/v1/jobs/{pid(job)}"), 401)


def test_a_forwarded_address_counts_only_from_a_trusted_proxy(servers, world):
    job = add_job(world["db"], world["acme"].id)
    acme = auth(world["tokens"]["acme"])
    # 127.0.0.4 is no trusted proxy: a fresh X-Forwarded-For per guess does not dodge the limit
    with client_from(servers["limited_b"], "127.0.0.4") as spoofer:
        for i in range(3):
            assert_problem(spoofer.get(f"/v1/jobs/{pid(job)}", headers={
                **auth(BAD), "X-Forwarded-For": f"198.51.100.{i}"}), 401)
        _cut_off(spoofer.get(f"/v1/jobs/{pid(job)}", headers={
            **auth(BAD), "X-Forwarded-For": "198.51.100.99"}))
    # 127.0.0.1 is trusted by default: its X-Forwarded-For names the client, so a client
    # behind the proxy is cut off alone, not the proxy nor its other clients
    with client_from(servers["limited_b"], "127.0.0.1") as proxy:
        behind = {"X-Forwarded-For": "198.51.100.20"}
        for _ in range(3):
            assert_problem(proxy.get(f"/v1/jobs/{pid(job)}", headers={**auth(BAD), **behind}), 401)
        _cut_off(proxy.get(f"/v1/jobs/{pid(job)}", headers={**auth(BAD), **behind}))
        neighbour = {"X-Forwarded-For": "198.51.100.21"}
        assert proxy.get(f"/v1/jobs/{pid(job)}", headers={**acme, **neighbour}).status_code == 200
        assert proxy.get(f"/v1/jobs/{pid(job)}", headers=acme).status_code == 200


def test_the_trusted_proxy_setting_decides_whose_forwarded_address_counts(servers, world):
    """limited_a has FORWARDED_ALLOW_IPS=127.0.0.1,::1,127.0.0.5; limited_b the default."""
    job = add_job(world["db"], world["acme"].id)
    acme = auth(world["tokens"]["acme"])
    behind = {"X-Forwarded-For": "198.51.100.30"}
    with client_from(servers["limited_a"], "127.0.0.5") as via_a, \
            client_from(servers["limited_b"], "127.0.0.5") as via_b:
        for _ in range(3):
            assert_problem(via_a.get(f"/v1/jobs/{pid(job)}", headers={**auth(BAD), **behind}), 401)
        _cut_off(via_a.get(f"/v1/jobs/{pid(job)}", headers={**acme, **behind}))
        # to limited_a, 127.0.0.5's other clients are other addresses
        assert via_a.get(f"/v1/jobs/{pid(job)}", headers={
            **acme, "X-Forwarded-For": "198.51.100.31"}).status_code == 200
        # to limited_b, 127.0.0.5 is the client, whatever it forwards: not cut off (the
        # failures were counted against 198.51.100.30), until it fails three times itself
        assert via_b.get(f"/v1/jobs/{pid(job)}", headers={**acme, **behind}).status_code == 200
        for _ in range(3):
            assert_problem(via_b.get(f"/v1/jobs/{pid(job)}", headers=auth(BAD)), 401)
        _cut_off(via_b.get(f"/v1/jobs/{pid(job)}", headers={**acme, **behind}))


def test_failed_authentications_are_not_limited_while_redis_is_down(servers, world):
    """As the per-token limit: without Redis nothing is counted (logged), nothing refused."""
    job = add_job(world["db"], world["acme"].id)
    with client_from(servers["no_redis"], "127.0.0.6") as client:
        for _ in range(6):
            assert_problem(client.get(f"/v1/jobs/{pid(job)}", headers=auth(BAD)), 401)
        got = client.get(f"/v1/jobs/{pid(job)}", headers=auth(world["tokens"]["acme"]))
        assert got.status_code == 200, got.text
