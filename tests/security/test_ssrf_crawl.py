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
from crawler.crawl_runner import log_path, run_crawl
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


def probe(runs, allow):
    """Crawl in one child process: each run is (urls, settings); returns each run's result."""
    env = dict(os.environ, FORECOURT_ALLOW_PRIVATE_HOSTS=json.dumps(allow),
               PYTHONPATH=str(PROJECT_ROOT))
    out = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "tests" / "security" / "probe_crawl.py"),
         json.dumps([{"urls": urls, "settings": settings} for urls, settings in runs])],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("PROBE ")]
    assert line, out.stderr[-2000:]
    return json.loads(line[-1][6:])


def test_forbidden_redirects_are_refused_by_middleware_and_at_connection_time(redirecting):
    """Two crawls in one process: with the middleware (refused and recorded), and without it,
    where the resolver still refuses at connection time, so a request that skipped the
    middleware, or a name re-resolved after it was checked, cannot connect."""
    outer, inner, inner_hits = redirecting
    result, bare = probe([
        ([outer + "/to-inner", outer + "/hop", outer + "/to-metadata", outer + "/to-here"], {}),
        ([outer + "/to-inner"], {"NETGUARD_ENABLED": False}),
    ], allow=["127.0.0.1"])
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
    assert bare["responses"] == [] and bare["refused"] == 0  # no middleware
    assert [f["url"] for f in bare["failures"]] == [inner + "/index.html"]
    assert "resolve" in (bare["failures"][0]["error"] + bare["failures"][0]["message"]).lower()
    assert inner_hits == {}  # nothing ever reached the forbidden server


def test_allow_list_lets_the_same_redirect_through(redirecting):
    outer, inner, inner_hits = redirecting
    [result] = probe([([outer + "/to-inner", outer + "/to-metadata"], {})],
                     allow=["127.0.0.1", "127.0.0.2"])
    assert [(r["url"], r["status"]) for r in result["responses"]] == \
        [(inner + "/index.html", 200)]
    assert result["refused"] == 1  # metadata stays refused
    assert inner_hits["/index.html"] == 1


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
    # (with 127.0.0.1 allowed, as in the rest of the suite, the same crawl stores 10 vehicles)


def test_crawl_job_never_reaches_a_forbidden_redirect_and_logs_json_without_secrets(
        db, redirecting, monkeypatch):
    """A dealer spider drops cross-host redirects already (offsite); netguard stands behind
    it for every request that does reach the downloader (see the probe tests above)."""
    outer, inner, inner_hits = redirecting
    start = outer + "/to-inner?token=s3cretpw"  # a credential the dealer's URL carries
    dealer = dealers_db.create(db, slug="maple", name="Maple", website_url=start)
    monkeypatch.setenv("FORECOURT_LOG_LEVEL", "DEBUG")  # Scrapy logs every URL it fetches
    job = run_crawl(_job(db, dealer.id).id, time_limit_s=60)
    assert job.state == "failed" and job.error
    assert inner_hits == {}
    assert db.execute("SELECT count(*) AS n FROM vehicles").fetchone()["n"] == 0
    text = log_path(job.id).read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert len(lines) > 5 and all(line["job_id"] == job.id and
                                  line["dealership_id"] == dealer.id and
                                  line.get("dealer") == "maple" for line in lines)
    assert any(line["logger"].startswith("scrapy") and "/to-inner" in line["msg"]
               for line in lines)
    assert any("127.0.0.2" in line["msg"] for line in lines)
    assert "s3cretpw" not in text and "token=***" in text
