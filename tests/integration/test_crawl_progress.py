"""A running crawl's job shows its progress while it runs, not only when it ends."""

from __future__ import annotations

import json

import pytest

from crawler.crawl_runner import run_crawl
from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from tests.crawling import copy_site

pytestmark = pytest.mark.integration


def test_crawl_counts_pages_and_items_while_it_runs(db, site, tmp_path):
    # One detail page never answers: the crawl stays open with every other page read and
    # their vehicles found, far fewer than a store batch (FORECOURT_BATCH_SIZE, 500). The
    # job's counters (what `crawl`, `crawl --wait`, `jobs show --follow` and the API show
    # live) said "pages 0 items 0" until the crawl ended.
    root = copy_site(tmp_path, "generic")
    (root / "routes.json").write_text(json.dumps(
        {"/inventory/used-2023-toyota-rav4-2T3P1RFV7PC338201": {"hang": True}}))
    base = site(root)
    dealer = dealers_db.create(db, slug="maple", name="Maple", website_url=base + "/inventory/")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
    jobs_db.start(db, job.id, "test")
    live: list[dict] = []

    def tick(j) -> None:
        if j.state == "running" and j.counters.get("pages") and j.counters.get("items"):
            live.append(dict(j.counters))

    # stopped (cancelled) as soon as the running job shows pages and items
    job = run_crawl(job.id, time_limit_s=90, on_tick=tick, should_stop=lambda: bool(live))
    assert live, f"no live progress while the crawl ran; it ended {job.state}: {job.error}"
    assert live[0]["pages"] >= 2 and live[0]["items"] >= 1
    assert job.state == "cancelled"  # and the hanging page kept it open until then
