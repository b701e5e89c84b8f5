"""RateLimit-Limit, -Remaining and -Reset (draft-ietf-httpapi-ratelimit-headers, seconds
until the window ends) on every answer to a counted request: a dealer UI learnt of its
token's limit only from a 429."""

from __future__ import annotations

import httpx

from tests.api.conftest import add_job, assert_problem, auth, client_from, pid

NAMES = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")


def _quota(resp: httpx.Response) -> tuple[int, int, int]:
    missing = [n for n in NAMES if n not in resp.headers]
    assert not missing, f"{resp.status_code} without {missing}: {dict(resp.headers)}"
    return tuple(int(resp.headers[n]) for n in NAMES)  # type: ignore[return-value]


def test_counted_answers_carry_the_tokens_quota_decreasing_until_the_429(servers, world):
    """limited_a and limited_b allow 5 requests per token per 60 s, counted together."""
    job = add_job(world["db"], world["acme"].id)
    acme = auth(world["tokens"]["acme"])
    a, b = (httpx.Client(base_url=servers[n].url, timeout=10) for n in ("limited_a", "limited_b"))
    with a, b:
        seen = []
        for client, path in ((a, f"/v1/jobs/{pid(job)}"), (b, "/v1/dealerships/acme/jobs"),
                             (a, "/v1/jobs/99999999"),  # a 404 is counted too
                             (b, f"/v1/jobs/{pid(job)}"), (a, "/v1/dealerships/acme/inventory")):
            resp = client.get(path, headers=acme)
            assert resp.status_code in (200, 404), resp.text
            seen.append(_quota(resp))
        assert [s[0] for s in seen] == [5] * 5
        assert [s[1] for s in seen] == [4, 3, 2, 1, 0]
        assert all(1 <= s[2] <= 60 for s in seen)
        assert [s[2] for s in seen] == sorted((s[2] for s in seen), reverse=True)
        over = b.get(f"/v1/jobs/{pid(job)}", headers=acme)
        assert_problem(over, 429)
        limit, remaining, reset = _quota(over)
        assert (limit, remaining) == (5, 0)
        assert int(over.headers["retry-after"]) == reset and 1 <= reset <= 60
        # another token has its own quota
        other = a.get(f"/v1/jobs/{pid(job)}", headers=auth(world["tokens"]["operator"]))
        assert _quota(other)[:2] == (5, 4)


def test_a_304_and_a_422_after_authentication_carry_the_quota_too(api, world):
    job = add_job(world["db"], world["acme"].id)
    acme = auth(world["tokens"]["acme"])
    first = api.get(f"/v1/jobs/{pid(job)}", headers=acme)
    unchanged = api.get(f"/v1/jobs/{pid(job)}",
                        headers=acme | {"If-None-Match": first.headers["etag"]})
    assert unchanged.status_code == 304
    invalid = api.get(f"/v1/jobs/{pid(job)}", params={"wait": -1}, headers=acme)
    assert invalid.status_code == 422
    quotas = [_quota(r) for r in (first, unchanged, invalid)]
    assert [q[1] for q in quotas] == sorted((q[1] for q in quotas), reverse=True)
    assert quotas[0][1] - quotas[2][1] == 2


def test_answers_to_requests_not_counted_carry_no_quota(api, world):
    """No token, an unknown one, or none read: nothing of a token's quota to tell."""
    for resp in (api.get("/v1/jobs/1"), api.get("/v1/jobs/1", headers=auth("fct_x_y")),
                 api.get("/healthz")):
        assert not any(n in resp.headers for n in NAMES), dict(resp.headers)


def test_an_address_cut_off_is_told_the_failed_authentications_limit(servers, world):
    """The 429 for too many unknown tokens from one address carries the quota that refused
    it: FORECOURT_API_AUTH_FAIL_LIMIT (3 on limited_b), none left, reset as Retry-After."""
    with client_from(servers["limited_b"], "127.0.0.88") as client:
        for _ in range(3):
            assert_problem(client.get("/v1/jobs/1", headers=auth("no-such-token")), 401)
        refused = client.get("/v1/jobs/1", headers=auth(world["tokens"]["acme"]))
        assert_problem(refused, 429)
        limit, remaining, reset = _quota(refused)
        assert (limit, remaining) == (3, 0)
        assert int(refused.headers["retry-after"]) == reset


def test_cors_lets_the_dealer_ui_read_the_quota(api, world):
    job = add_job(world["db"], world["acme"].id)
    resp = api.get(f"/v1/jobs/{pid(job)}", headers=auth(world["tokens"]["acme"])
                   | {"Origin": "https://ui.example"})
    assert resp.status_code == 200
    exposed = {h.strip().lower() for h in resp.headers["access-control-expose-headers"].split(",")}
    assert set(NAMES) <= exposed
    assert _quota(resp)[0] == 100000  # the main server's FORECOURT_API_RATE_LIMIT
