"""Tokens that expire: `forecourt tokens create --expires-in`; an expired token answers
exactly as an unknown one does (existence does not leak), a long poll outliving its token
ends in 401, and `tokens list` shows which tokens have expired."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest

from crawler.db import tokens as tokens_db
from tests.api.conftest import FORECOURT, add_job, assert_problem, auth, eventually, pid
from tests.api.test_polling import _update, _wait_in_thread


def forecourt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FORECOURT, *args], capture_output=True, text=True, timeout=60)


def _record(db, label: str):
    return next(t for t in tokens_db.list_all(db) if t.label == label)


def _expire(db, token_id: int, in_s: float = -1) -> None:
    db.execute("UPDATE api_tokens SET expires_at = now() + make_interval(secs => %s) "
               "WHERE id = %s", (in_s, token_id))


def test_create_with_expires_in_stores_the_expiry_and_the_token_works_until_then(api, world):
    created = forecourt("tokens", "create", "--dealer", "acme", "--label", "ui-90d",
                        "--expires-in", "90d")
    assert created.returncode == 0, created.stderr
    assert "expires" in created.stdout
    token = created.stdout.strip().splitlines()[-1]
    record = _record(world["db"], "ui-90d")
    want = datetime.now(UTC) + timedelta(days=90)
    assert abs((record.expires_at - want).total_seconds()) < 120
    job = add_job(world["db"], world["acme"].id)
    assert api.get(f"/v1/jobs/{pid(job)}", headers=auth(token)).status_code == 200
    hours = forecourt("tokens", "create", "--operator", "--label", "ops-12h",
                      "--expires-in", "12h")
    assert hours.returncode == 0, hours.stderr
    twelve = _record(world["db"], "ops-12h").expires_at - datetime.now(UTC)
    assert timedelta(hours=11, minutes=58) < twelve <= timedelta(hours=12)
    # without --expires-in a token does not expire (as before)
    plain = forecourt("tokens", "create", "--dealer", "acme", "--label", "forever")
    assert plain.returncode == 0, plain.stderr
    assert _record(world["db"], "forever").expires_at is None


def test_an_expired_token_gets_exactly_the_unknown_tokens_401(api, world):
    db = world["db"]
    token = world["tokens"]["acme"]
    job = add_job(db, world["acme"].id)
    assert api.get(f"/v1/jobs/{pid(job)}", headers=auth(token)).status_code == 200  # now cached
    _expire(db, _record(db, "acme ui").id)
    expired = eventually(lambda: api.get(f"/v1/jobs/{pid(job)}", headers=auth(token)), 401)
    unknown = api.get(f"/v1/jobs/{pid(job)}", headers=auth("fct_000000000000_" + "x" * 43))
    got, want = assert_problem(expired, 401), assert_problem(unknown, 401)
    assert got == want
    assert expired.headers["www-authenticate"] == unknown.headers["www-authenticate"]
    assert set(expired.headers) == set(unknown.headers)


def test_a_token_expiring_in_the_process_cache_stops_working_on_time(api, world):
    """No notification comes when a token's time runs out: a cached record must not
    outlive its expiry by the cache's lifetime (FORECOURT_API_TOKEN_CACHE_S, 60 s)."""
    db = world["db"]
    token = world["tokens"]["bolt"]
    job = add_job(db, world["bolt"].id, kind="feed")
    _expire(db, _record(db, "bolt ui").id, in_s=1.5)
    resp = eventually(lambda: api.get(f"/v1/jobs/{pid(job)}", headers=auth(token)), 200)
    assert resp.status_code == 200  # works, and is cached, while it lasts
    time.sleep(1.6)
    assert_problem(api.get(f"/v1/jobs/{pid(job)}", headers=auth(token)), 401)


def test_a_long_poll_outliving_its_token_answers_401_not_data(api, world):
    """As for a token revoked during a `wait`: whether the job changes after the expiry
    (waking the poll with data) or not (the wait runs out), the answer is the unknown
    token's 401."""
    db = world["db"]
    job = add_job(db, world["acme"].id, state="running", phase="crawling")
    acme = auth(world["tokens"]["acme"])
    tag = api.get(f"/v1/jobs/{pid(job)}", headers=acme).headers["etag"]
    token_id = _record(db, "acme ui").id
    _expire(db, token_id, in_s=1.5)
    quiet = api.get(f"/v1/jobs/{pid(job)}?wait=3", headers=acme | {"If-None-Match": tag})
    assert assert_problem(quiet, 401)["detail"] == "the bearer token is unknown or revoked"

    db.execute("UPDATE api_tokens SET expires_at = NULL WHERE id = %s", (token_id,))
    tag = eventually(lambda: api.get(f"/v1/jobs/{pid(job)}", headers=acme), 200).headers["etag"]
    _expire(db, token_id, in_s=1.5)
    result, done = _wait_in_thread(api, f"/v1/jobs/{pid(job)}?wait=30",
                                   acme | {"If-None-Match": tag})
    time.sleep(2)
    _update(job, phase="storing")  # wakes the waiter with data it may no longer have
    assert done.wait(40)
    woken = result["resp"]
    assert assert_problem(woken, 401)["detail"] == "the bearer token is unknown or revoked"
    assert "storing" not in woken.text


def test_tokens_list_shows_expiry_and_which_tokens_expired(world):
    db = world["db"]
    _expire(db, _record(db, "acme ui").id)
    _expire(db, _record(db, "bolt ui").id, in_s=86_400)
    listing = forecourt("tokens", "list")
    assert listing.returncode == 0, listing.stderr
    assert "expires" in listing.stdout
    rows = {line.split("│")[5].strip(): line for line in listing.stdout.splitlines()
            if line.count("│") > 5 and "ui" in line}
    assert "expired" in rows["acme ui"]
    assert "expired" not in rows["bolt ui"]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    assert tomorrow in rows["bolt ui"]
    active = forecourt("tokens", "list", "--active").stdout
    assert "acme ui" not in active and "bolt ui" in active


@pytest.mark.parametrize("value", ["90", "0d", "-5d", "1.5d", "3 days", "12x", "d",
                                   "99999999999d"])
def test_a_bad_expires_in_is_a_one_line_error_with_the_fix(world, value):
    done = forecourt("tokens", "create", "--dealer", "acme", "--label", "bad",
                     "--expires-in", value)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "--expires-in" in lines[0] and "90d" in lines[0], lines[0]
    assert all(t.label != "bad" for t in tokens_db.list_all(world["db"]))
