"""The JavaScript-only fixture site crawled with real headless Chromium (scrapy-playwright):
vehicles that exist only after scripts run are stored; images and fonts are never fetched;
every page the browser opened is closed; other platforms never start a browser."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from decimal import Decimal

import pytest

from crawler import fixture_server
from crawler.config import PROJECT_ROOT
from crawler.crawl_runner import child_env, log_path, run_crawl
from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db

pytestmark = pytest.mark.integration

VINS = {"1FMCU9J92MUA22451", "JTMB1RFV8KD016732", "5YJ3E1EA9LF612208", "1C6SRFFT0MN104877",
        "WBA53BJ04MWW95560"}

# One crawl in its own process, without the store pipeline; prints items and stats as JSON.
BARE_CRAWL = """
import json, sys
from scrapy import signals
from scrapy.crawler import CrawlerProcess
from scrapy.utils.project import get_project_settings
from spiders.registry import spider_for
platform, url = sys.argv[1:]
settings = get_project_settings()
process = CrawlerProcess(settings)
crawler = process.create_crawler(spider_for(platform))
items = []


def scraped(item, **kwargs):
    items.append(item.model_dump(mode="json"))


crawler.signals.connect(scraped, signal=signals.item_scraped)
process.crawl(crawler, url=url)
process.start()
handlers = sorted(type(h).__name__ for h in crawler.engine.downloader.handlers._handlers.values())
print(json.dumps({"items": items, "stats": crawler.stats.get_stats(), "handlers": handlers},
                 default=str))
"""


def bare_crawl(platform: str, url: str) -> dict:
    done = subprocess.run([sys.executable, "-c", BARE_CRAWL, platform, url], cwd=PROJECT_ROOT,
                          env=child_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_plain_platforms_never_load_the_browser_handler():
    with fixture_server.serving("dealervenom") as base:
        result = bare_crawl("dealervenom", base + "/new-vehicles/")
    assert len(result["items"]) == 4
    assert not any(k.startswith("playwright/") for k in result["stats"])
    assert "ScrapyPlaywrightDownloadHandler" not in result["handlers"]


def logged_stats(job_id: int) -> dict[str, int]:
    """Integer stats from the crawl's final 'Dumping Scrapy stats' log record."""
    dump = next(json.loads(line)["msg"] for line in reversed(
        log_path(job_id).read_text().splitlines()) if "Dumping Scrapy stats" in line)
    return {k: int(v) for k, v in re.findall(r"'([^']+)': (\d+)\b(?![.:-])", dump)}


def test_javascript_dealer_crawl_renders_stores_blocks_resources_and_closes_pages(db):
    server = fixture_server.serve("javascript")
    try:
        base = fixture_server.base_url(server)
        dealer = dealers_db.create(db, slug="sunset", name="Sunset Ridge Auto Gallery",
                                   website_url=base + "/inventory/", platform="javascript")
        job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
        jobs_db.start(db, job.id, "test")
        job = run_crawl(job.id, time_limit_s=120)
    finally:
        server.shutdown()
        server.server_close()
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
    hits = server.RequestHandlerClass.hits
    assert hits["/api/inventory-1.json"] == 1 and hits["/api/inventory-2.json"] == 1
    assert not [p for p in hits if p.startswith(("/static/img/", "/static/fonts/"))]
    stats = logged_stats(job.id)
    assert stats["playwright/page_count"] == 2
    assert stats["playwright/page_count/closed"] == 2
    assert stats["playwright/page_count/max_concurrent"] <= 4
    assert stats["forecourt/playwright/aborted/image"] >= 6
    assert stats["forecourt/playwright/aborted/font"] >= 1
