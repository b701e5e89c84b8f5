"""The fallback chain's last step inside a non-javascript platform's crawl, with real
headless Chromium: a DealerVenom results page whose cards only exist after its scripts run
is rendered by the dealervenom crawl itself, read as DealerVenom cards, its next page
rendered directly and its detail pages fetched plainly; the run is complete and says which
pages needed the browser. A page still empty after rendering leaves the run incomplete. And
plain crawls of every other fixture platform never start a browser at all."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from decimal import Decimal

import pytest

from crawler import fixture_server
from crawler.config import PROJECT_ROOT
from crawler.crawl_runner import child_env
from crawler.db import dealers as dealers_db
from tests.crawling import crawl, logged_stats
from tests.crawling import vehicles_by_vin as vehicles

pytestmark = pytest.mark.integration

SITES = PROJECT_ROOT / "fixtures" / "sites"
CERTIFIED = {"5XXG64J26PG218845", "5XYRL4LC2NG104633", "KNDPM3AC0M7880921"}
ANSWERS = "/dv-search/juniper_valley_kia_inventory/"


def money(value) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(Decimal("0.01"))


def test_script_drawn_dealervenom_results_are_rendered_in_its_own_crawl_and_reported(db):
    server = fixture_server.serve("dealervenom")
    try:
        base = fixture_server.base_url(server)
        dealer = dealers_db.create(db, slug="juniper-cpo", name="Juniper Valley Kia",
                                   website_url=base + "/certified-vehicles/",
                                   platform="dealervenom")
        job = crawl(db, dealer.id)
    finally:
        server.shutdown()
        server.server_close()
    assert job.state == "succeeded", (job.error, job.report)
    assert job.report["complete"] is True and job.verdict == "healthy"
    got = vehicles(db, dealer.id)
    assert set(got) == CERTIFIED  # not the analytics or redirect-map VINs
    k5 = got["5XXG64J26PG218845"]  # detail page (plain HTTP) merged with the rendered card
    assert money(k5["price"]) == money(26450) and k5["mileage"] == 18412
    assert k5["condition"] == "certified" and k5["trim"] == "GT-Line"
    assert k5["url"] == base + "/vehicle/Used/2023/Kia/K5/5XXG64J26PG218845/"
    assert got["5XYRL4LC2NG104633"]["availability"] == "In Transit"
    sportage = got["KNDPM3AC0M7880921"]  # from page 2, itself rendered
    assert sportage["availability"] == "Sale Pending - In Stock"
    assert money(sportage["price"]) == money(19880)

    # the run says which pages needed the browser
    assert job.counters["rendered"] == 2
    assert job.report["rendered_pages"] == [base + "/certified-vehicles/",
                                            base + "/certified-vehicles/?pg=2"]
    stats = logged_stats(job.id)
    assert stats["forecourt/rendered/pages"] == 2
    assert stats["forecourt/rendered/inventory"] == 2
    # only page 1 was fetched plainly first; page 2, found on a rendered page, went straight
    # to the browser
    assert stats["forecourt/fallback/javascript"] == 1
    assert stats["playwright/page_count"] == 2 and stats["playwright/page_count/closed"] == 2
    assert stats["forecourt/playwright/aborted/image"] == 3  # one photo per card, none fetched
    hits = server.RequestHandlerClass.hits
    assert hits["/certified-vehicles/"] == 3  # page 1 plain and rendered, page 2 rendered
    assert hits[ANSWERS + "certified-0.json"] == 1 and hits[ANSWERS + "certified-1.json"] == 1
    for vin in CERTIFIED:  # each detail page once, over plain HTTP
        assert sum(n for p, n in hits.items() if p.startswith("/vehicle/") and vin in p) == 1
    assert not [p for p in hits if p.startswith("/wp-content/uploads/")]


def test_a_results_page_still_without_vehicles_after_rendering_leaves_the_run_incomplete(
        db, site, tmp_path):
    root = tmp_path / "dealervenom"
    shutil.copytree(SITES / "dealervenom", root)
    (root / ANSWERS.strip("/") / "certified-0.json").unlink()  # the search index is down
    base = site(root)
    dealer = dealers_db.create(db, slug="juniper-down", name="Juniper Valley Kia",
                               website_url=base + "/certified-vehicles/", platform="dealervenom")
    job = crawl(db, dealer.id)
    assert job.state == "failed" and job.report["complete"] is False, (job.error, job.report)
    assert f"no vehicles found on {base}/certified-vehicles/, even rendered in the headless " \
           f"browser" in job.error
    assert job.counters["rendered"] == 1  # rendered once, never again
    stats = logged_stats(job.id)
    assert stats["forecourt/fallback/javascript"] == 1
    assert stats["forecourt/fallback/nothing_found"] == 1
    assert stats["playwright/page_count"] == 1


# Plain crawls of fixture sites, all at once in one process without the store; for each
# crawl: items, forecourt and playwright stats, whether the download handler started a
# browser, and every child process seen while responses arrived.
PLAIN_CRAWLS = """
import json, sys
import psutil
from scrapy import signals
from scrapy.crawler import CrawlerProcess
from scrapy.utils.project import get_project_settings
from spiders.registry import spider_for

targets = json.loads(sys.argv[1])
settings = get_project_settings()
settings.set("ITEM_PIPELINES", {})
settings.set("LOG_LEVEL", "WARNING")
process = CrawlerProcess(settings)
me = psutil.Process()
children = set()
crawls = []


def sample(**kwargs):
    for child in me.children(recursive=True):
        try:
            children.add(child.name())
        except psutil.Error:
            pass


for platform, url in targets:
    crawler = process.create_crawler(spider_for(platform))
    items = []
    crawler.signals.connect(lambda item, items=items, **kw: items.append(item.vin),
                            signal=signals.item_scraped, weak=False)
    crawler.signals.connect(sample, signal=signals.response_received)
    process.crawl(crawler, url=url)
    crawls.append((platform, crawler, items))
process.start()
out = {}
for platform, crawler, items in crawls:
    handlers = crawler.engine.downloader.handlers._handlers.values()
    out[platform] = {
        "items": len(items),
        "stats": sorted(k for k in crawler.stats.get_stats()
                        if k.startswith(("playwright/", "forecourt/rendered", "forecourt/browser",
                                         "forecourt/fallback/javascript"))),
        "handlers": sorted(type(h).__name__ for h in handlers),
        "browser_started": any(getattr(h, "browser_started", False) for h in handlers),
        "problems": crawler.spider.problems,
    }
print(json.dumps({"crawls": out, "children": sorted(children)}))
"""

PLAIN_SITES = [("generic", "/inventory/"), ("dealercom", "/"), ("dealerinspire", "/inventory/"),
               ("dealeron", "/searchall.aspx"),
               ("dealereprocess", "/search/all-cedar-hollow-or/?s:pr=1&tp=all"),
               ("dealervenom", "/new-vehicles/"), ("teamvelocity", "/inventory/new")]


def test_plain_crawls_of_every_platform_never_start_the_browser(site):
    targets = [(platform, site(platform) + path) for platform, path in PLAIN_SITES]
    done = subprocess.run([sys.executable, "-c", PLAIN_CRAWLS, json.dumps(targets)],
                          cwd=PROJECT_ROOT, env=child_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for platform, _ in PLAIN_SITES:
        found = result["crawls"][platform]
        assert found["items"] > 0 and not found["problems"], (platform, found)
        # the browser-capable handler is installed, and nothing of the browser ever ran
        assert "BrowserOnDemandHandler" in found["handlers"], (platform, found)
        assert "ScrapyPlaywrightDownloadHandler" not in found["handlers"], (platform, found)
        assert not found["browser_started"] and found["stats"] == [], (platform, found)
    # no Playwright driver (node) and no Chromium process was ever started
    assert not [name for name in result["children"]
                if "chrom" in name.lower() or "node" in name.lower()], result["children"]
