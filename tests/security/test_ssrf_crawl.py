"""Outbound safety in real crawls: forbidden addresses are refused at every request, at every
redirect and at connection time, and the refusal is recorded; the allow-list decides."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from crawler import fixture_server
from crawler.config import PROJECT_ROOT
from crawler.crawl_runner import run_crawl
from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db

pytestmark = pytest.mark.integration

GENERIC = PROJECT_ROOT / "fixtures" / "sites" / "generic"


@pytest.fixture
def redirecting(tmp_path):
    """A site on 127.0.0.1 redirecting to a second server on 127.0.0.2 and elsewhere."""
    inner_root = tmp_path / "inner"
    inner_root.mkdir()
    (inner_root / "index.html").write_text("<html><title>inner</title></html>")
    inner = fixture_server.serve(inner_root, host="127.0.0.2")
    inner_base = fixture_server.base_url(inner)
    outer_root = tmp_path / "outer"
    outer_root.mkdir()
    (outer_root / "here.html").write_text("<html><title>here</title></html>")
    (outer_root / "routes.json").write_text(json.dumps({
        "/to-inner": {"redirect": inner_base + "/index.html"},
        "/to-metadata": {"redirect": "http://169.254.169.254/latest/meta-data/"},
        "/to-here": {"redirect": "{{BASE}}/here.html", "redirect_status": 301},
        "/hop": {"redirect": "{{BASE}}/to-inner"},
    }))
    outer = fixture_server.serve(outer_root)
    yield fixture_server.base_url(outer), inner_base, inner.RequestHandlerClass.hits
    for server in (outer, inner):
        server.shutdown()
        server.server_close()


def probe(urls, allow, settings=None):
    env = dict(os.environ, FORECOURT_ALLOW_PRIVATE_HOSTS=json.dumps(allow),
               PYTHONPATH=str(PROJECT_ROOT))
    out = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "tests" / "security" / "probe_crawl.py"),
         json.dumps({"urls": urls, "settings": settings or {}})],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("PROBE ")]
    assert line, out.stderr[-2000:]
    return json.loads(line[-1][6:])


def test_redirects_to_forbidden_addresses_are_refused_and_recorded(redirecting):
    outer, inner, inner_hits = redirecting
    result = probe([outer + "/to-inner", outer + "/hop", outer + "/to-metadata",
                    outer + "/to-here"], allow=["127.0.0.1"])
    # the same-host redirect is followed
    assert [r["url"] for r in result["responses"]] == [outer + "/here.html"]
    # each refused request is the redirect itself (after one or two hops)
    failed = result["failures"]
    assert sorted(f["url"] for f in failed) == sorted(
        [inner + "/index.html", inner + "/index.html", "http://169.254.169.254/latest/meta-data/"])
    assert all(f["error"] == "IgnoreRequest" and "netguard" in f["message"] for f in failed)
    assert result["refused"] == 3
    assert any("127.0.0.2" in p and "loopback" in p for p in result["problems"])
    assert any("169.254.169.254" in p and "metadata" in p for p in result["problems"])
    assert inner_hits == {}  # nothing ever reached the forbidden server


def test_allow_list_lets_the_same_redirect_through(redirecting):
    outer, inner, inner_hits = redirecting
    result = probe([outer + "/to-inner", outer + "/to-metadata"],
                   allow=["127.0.0.1", "127.0.0.2"])
    assert [(r["url"], r["status"]) for r in result["responses"]] == \
        [(inner + "/index.html", 200)]
    assert result["refused"] == 1  # metadata stays refused
    assert inner_hits["/index.html"] == 1


def test_connection_time_check_holds_without_the_middleware(redirecting):
    """The resolver refuses at connection time, so even a request that skips the middleware
    (or a name re-resolved after it was checked) cannot connect."""
    outer, inner, inner_hits = redirecting
    result = probe([outer + "/to-inner"], allow=["127.0.0.1"],
                   settings={"NETGUARD_ENABLED": False})
    assert result["responses"] == [] and result["refused"] == 0  # no middleware
    assert [f["url"] for f in result["failures"]] == [inner + "/index.html"]
    assert "resolve" in result["failures"][0]["error"].lower() + \
        result["failures"][0]["message"].lower()
    assert inner_hits == {}


def _job(db, dealer_id):
    job, _ = jobs_db.create_or_get_active(db, dealer_id, "crawl", "operator")
    jobs_db.start(db, job.id, "test")
    return job


def test_crawl_job_of_a_private_dealer_url_fails_without_fetching(db, site, monkeypatch):
    base = site("generic")
    dealer = dealers_db.create(db, slug="maple", name="Maple", website_url=base + "/inventory/")
    monkeypatch.setenv("FORECOURT_ALLOW_PRIVATE_HOSTS", "[]")  # production: nothing allowed
    job = run_crawl(_job(db, dealer.id).id, time_limit_s=60)
    assert job.state == "failed" and job.error_kind == "unsafe_url"
    assert "loopback" in job.error
    assert db.execute("SELECT count(*) AS n FROM vehicles").fetchone()["n"] == 0
    monkeypatch.setenv("FORECOURT_ALLOW_PRIVATE_HOSTS", '["127.0.0.1"]')
    job = run_crawl(_job(db, dealer.id).id, time_limit_s=60)
    assert job.state == "succeeded", job.error
    assert db.execute("SELECT count(*) AS n FROM vehicles").fetchone()["n"] == 10


def test_crawl_job_records_a_refused_redirect(db, redirecting):
    outer, inner, inner_hits = redirecting
    dealer = dealers_db.create(db, slug="maple", name="Maple", website_url=outer + "/to-inner")
    job = run_crawl(_job(db, dealer.id).id, time_limit_s=60)
    assert job.state != "succeeded"
    assert "unsafe URL" in job.error and "127.0.0.2" in job.error
    assert inner_hits == {}
    assert db.execute("SELECT count(*) AS n FROM vehicles").fetchone()["n"] == 0
