"""Sites that hang, reset connections, answer 500, stream forever or send too much: the crawl
ends within its limits, says why, and the stored inventory is left exactly as it was."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from crawler import fixture_server
from crawler.config import PROJECT_ROOT
from crawler.crawl_runner import run_crawl
from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db

pytestmark = pytest.mark.integration

GENERIC = PROJECT_ROOT / "fixtures" / "sites" / "generic"
LIMITS = {"DOWNLOAD_TIMEOUT": 3, "RETRY_TIMES": 0, "DOWNLOAD_MAXSIZE": 1_000_000,
          "AUTOTHROTTLE_ENABLED": False}
DETAIL = "/inventory/{}"


def _crawl(db, dealer_id, limit=60):
    job, created = jobs_db.create_or_get_active(db, dealer_id, "crawl", "operator")
    assert created
    jobs_db.start(db, job.id, "test")
    started = time.monotonic()
    job = run_crawl(job.id, time_limit_s=limit)
    return job, time.monotonic() - started


def _state(db):
    vehicles = db.execute("SELECT vin, status, content_hash, price, updated_at, removed_at "
                          "FROM vehicles ORDER BY vin").fetchall()
    events = db.execute("SELECT vin, kind FROM vehicle_events ORDER BY id").fetchall()
    return vehicles, events


@pytest.fixture
def seeded(db, tmp_path):
    """A dealer whose healthy first crawl stored the generic site's 10 vehicles, and a
    function that makes the same site (same address) misbehave per routes.json rules."""
    root = tmp_path / "site"
    shutil.copytree(GENERIC, root)
    servers = [fixture_server.serve(root)]
    base = fixture_server.base_url(servers[0])
    dealer = dealers_db.create(db, slug="maple", name="Maple", website_url=base + "/inventory/",
                               settings={"scrapy": LIMITS})
    job, _ = _crawl(db, dealer.id)
    assert job.state == "succeeded", job.error
    before = _state(db)
    assert len(before[0]) == 10

    def misbehave(routes):
        (root / "routes.json").write_text(json.dumps(routes))
        servers[-1].shutdown()
        servers[-1].server_close()
        servers.append(fixture_server.serve(root, port=servers[0].server_address[1]))

    yield dealer, before, misbehave
    servers[-1].shutdown()
    servers[-1].server_close()


def test_misbehaving_sites_end_within_their_limits_say_why_and_change_nothing(db, seeded):
    """One seeded dealer, three misbehaving versions of its site, one crawl each."""
    dealer, before, misbehave = seeded

    # 1. detail pages that hang, reset, answer 500, stream forever, or send too much
    misbehave({
        DETAIL.format("used-2021-honda-civic-19XFC2F7XME104512"): {"hang": True},
        DETAIL.format("used-2019-volkswagen-golf-gti-3VW6T7AU3KM022910"): {"reset": True},
        DETAIL.format("used-2020-subaru-outback-4S4BTACC1L3210987"): {"status": 500},
        DETAIL.format("used-2023-toyota-rav4-2T3P1RFV7PC338201"): {"endless": True},
        DETAIL.format("used-2022-jeep-wrangler-1C4HJXDG2NW150034"): {
            "huge_bytes": 50_000_000},
        DETAIL.format("used-2022-nissan-rogue-JN8BT3BB7NW300112"): {
            "gzip_bomb_bytes": 64_000_000},
    })
    job, took = _crawl(db, dealer.id)
    assert job.state == "partial" and job.verdict == "degraded"
    assert job.error_kind == "partial"
    for why in ("1 timed out (DOWNLOAD_TIMEOUT 3 s)", "1 HTTP 500", "connection lost or reset",
                "3 cut off at the size limit (DOWNLOAD_MAXSIZE 1000000 bytes)"):
        assert why in job.error, job.error
    assert job.report["complete"] is False and job.counters["removed"] == 0
    assert _state(db) == before  # no vehicle removed or rewritten, no event recorded
    assert took < 60  # ended by its download limits, not by the job's time limit

    # 2. listing pages failing: 503 on the listing, a reset on the sitemap
    misbehave({"/inventory/": {"status": 503}, "/sitemap_index.xml": {"reset": True}})
    job, _ = _crawl(db, dealer.id)
    assert job.state in ("failed", "partial") and job.verdict in ("failed", "degraded")
    assert "HTTP 503" in job.error and "listing page" in job.error
    assert job.counters["removed"] == 0
    assert _state(db) == before

    # 3. everything hangs and the download timeout is long: the job's time limit stops it
    misbehave({path: {"hang": True} for path in (
        "/robots.txt", "/inventory/", "/sitemap_index.xml")})
    db.execute("UPDATE dealerships SET settings = %s WHERE id = %s",
               (json.dumps({"scrapy": {**LIMITS, "DOWNLOAD_TIMEOUT": 600}}), dealer.id))
    job, took = _crawl(db, dealer.id, limit=4)
    assert job.state == "failed" and job.error_kind == "timeout"
    assert "time limit of 4 s" in job.error
    assert took < 15
    assert _state(db) == before
