"""The JavaScript-only fixture site crawled with real headless Chromium (scrapy-playwright):
vehicles that exist only after scripts run are stored; images and fonts are never fetched;
every page the browser opened is closed. (Other platforms rendering inside their own crawl,
and plain crawls never starting a browser: test_rendering_fallback.py.)"""

from __future__ import annotations

from decimal import Decimal

import pytest

from crawler import fixture_server
from crawler.crawl_runner import run_crawl
from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from jobs import outcome
from tests.crawling import active_vins, crawl, logged_stats

pytestmark = pytest.mark.integration

VINS = {"1FMCU9J92MUA22451", "JTMB1RFV8KD016732", "5YJ3E1EA9LF612208", "1C6SRFFT0MN104877",
        "WBA53BJ04MWW95560"}


def crawl_javascript_site(db, slug: str, name: str):
    """Serve the JavaScript fixture site and crawl it for a new dealer, to the job's end.
    Returns (job, dealer, base URL, the server's request counts by path)."""
    server = fixture_server.serve("javascript")
    try:
        base = fixture_server.base_url(server)
        dealer = dealers_db.create(db, slug=slug, name=name,
                                   website_url=base + "/inventory/", platform="javascript")
        job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
        jobs_db.start(db, job.id, "test")
        job = run_crawl(job.id, time_limit_s=120)
    finally:
        server.shutdown()
        server.server_close()
    return job, dealer, base, server.RequestHandlerClass.hits


def test_javascript_dealer_crawl_renders_stores_blocks_resources_and_closes_pages(db):
    job, dealer, base, hits = crawl_javascript_site(db, "sunset", "Sunset Ridge Auto Gallery")
    assert job.state == "succeeded", job.error
    rows = {r["vin"]: r for r in db.execute(
        "SELECT * FROM vehicles WHERE dealership_id = %s", (dealer.id,))}
    assert set(rows) == VINS  # the compare button's bare data-vin is not a vehicle
    escape = rows["1FMCU9J92MUA22451"]
    assert escape["price"] == Decimal("24495.00") and escape["mileage"] == 31207
    assert rows["JTMB1RFV8KD016732"]["availability"] == "In Transit"
    assert rows["JTMB1RFV8KD016732"]["price"] == Decimal("25750.00")
    tesla = rows["5YJ3E1EA9LF612208"]  # "0" sale and final prices are placeholders
    assert tesla["price"] is None and tesla["msrp"] == Decimal("39990.00")
    assert tesla["condition"] == "certified"
    assert rows["WBA53BJ04MWW95560"]["availability"] == "Sale Pending"
    # the page's script fetched both JSON pages; no image or font ever reached the server
    assert hits["/api/inventory-1.json"] == 1 and hits["/api/inventory-2.json"] == 1
    assert not [p for p in hits if p.startswith(("/static/img/", "/static/fonts/"))]
    stats = logged_stats(job.id)
    assert stats["playwright/page_count"] == 2
    assert stats["playwright/page_count/closed"] == 2
    assert stats["playwright/page_count/max_concurrent"] <= 4
    assert stats["forecourt/playwright/aborted/image"] >= 6
    assert stats["forecourt/playwright/aborted/font"] >= 1
    assert job.counters["rendered"] == 2  # every listing page of this platform is rendered
    assert job.report["rendered_pages"] == [base + "/inventory/", base + "/inventory/?page=2"]


def test_without_chromium_a_javascript_crawl_fails_with_the_fix(db, monkeypatch):
    from crawler.config import reset_settings

    monkeypatch.setenv("FORECOURT_CHROMIUM_PATH", "/nonexistent/chromium")
    reset_settings()
    try:
        job, dealer, base, _ = crawl_javascript_site(db, "dark", "Dark Lot")
    finally:
        monkeypatch.undo()
        reset_settings()
    # the browser was never started, and the job says why and what to do, in one line each
    assert job.state == "failed" and job.counters.get("rendered", 0) == 0
    missing = [r for r in job.report["reasons"] if "no Chromium" in r]
    assert missing == [f"listing page {base}/inventory/ failed: no Chromium for JavaScript "
                       "sites at /nonexistent/chromium (apt-get install -y chromium, or set "
                       "FORECOURT_CHROMIUM_PATH)"]
    assert "downloads failed: 1 not sent (NoChromium)" in job.report["reasons"]
    assert "no Chromium" in job.error
    # every attempt here would meet the same missing browser: failed for good, never retried
    # (a queued job goes to a worker that has Chromium first, if one is alive: jobs/routing.py)
    assert job.error_kind == outcome.NO_CHROMIUM
    assert outcome.classify_settled(job) == outcome.PERMANENT
    assert not db.execute("SELECT 1 FROM vehicles WHERE dealership_id = %s",
                          (dealer.id,)).fetchall()


SCROLLED = {"19XFC1F35KE004712", "19XFC2F7XME104512", "1C4GJXAG1JW101224",
            "1C4PJMLB2LD301284", "1FMCU9HD4KUA20188", "1FTEW1EP1JFC10234"}
LOADED_MORE = {"1G1ZD5ST3KF120884", "1G1ZD5ST9SF104432", "1G1ZG5ST3NF150902",
               "1GNEVJRS3SJ120445", "1GNSKPKDXSR188107", "1HGCR2F56GA000317"}


def test_troubled_javascript_pages_end_in_time_and_are_never_read_as_an_empty_lot(
        db, site, monkeypatch):
    """fixtures/sites/javascript-trouble, one listing page per trouble: an infinite scroll
    that polls for ever (never network-idle), a "Load more vehicles" button, a page whose
    API answers 500 and then says "0 vehicles", a page its consent manager sends to a
    cookie wall, and a page whose script never returns."""
    from crawler.config import reset_settings

    monkeypatch.setenv("FORECOURT_RENDER_TIMEOUT_S", "10")
    monkeypatch.setenv("FORECOURT_RENDER_SETTLE_S", "1")
    reset_settings()
    base = site("javascript-trouble")
    listing = [base + path for path in ("/busy/", "/more/", "/specials/", "/certified/")]
    dealer = dealers_db.create(db, slug="mesa", name="Mesa Trouble Motors",
                               website_url=base + "/inventory/", platform="javascript",
                               settings={"listing_urls": listing})
    try:
        job = crawl(db, dealer.id)
    finally:
        monkeypatch.undo()
        reset_settings()
    # every vehicle of the scrolled and the clicked pages, though one never went idle
    assert active_vins(db, dealer.id) == SCROLLED | LOADED_MORE
    # and the run says what it could not read, so nothing is ever removed on its word
    assert job.state == "blocked" and job.report["complete"] is False, job.report
    reasons = job.report["reasons"]
    assert f"blocked listing page {base}/certified/: its scripts moved it to " \
           f"{base}/consent/?return=/certified/ (a consent or bot-check page?)" in reasons
    assert f"listing page {base}/specials/ says it has no vehicles, but its scripts' data " \
           f"requests failed (GET {base}/api/specials.json: HTTP 500): its vehicles are " \
           "unknown" in reasons
    assert f"listing page {base}/busy/ failed: rendering took longer than 10 s (its " \
           "scripts never finished; the page was closed) (a slow but working site may " \
           "need a higher FORECOURT_RENDER_TIMEOUT_S)" in reasons
    stats = logged_stats(job.id)
    assert stats["forecourt/rendered/timed_out"] == 1
    assert stats["forecourt/rendered/unsettled"] == 1  # the polling page, read anyway
    assert stats["forecourt/rendered/more_rounds"] >= 3  # scrolled twice, clicked twice
    assert stats["forecourt/playwright/aborted/tracker"] == 1  # analytics.js
    # one page per listing page, each closed, the hung one too
    assert stats["playwright/page_count"] == stats["playwright/page_count/closed"] == 5
