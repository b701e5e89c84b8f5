"""A DealerInspire dealer with more vehicles than Algolia pages (1,350 against the index's
1,000-hit pagination limit), crawled for real on 127.0.0.1 (fixtures/sites/
dealerinspire-large: an index that pages, filters and counts facets as Algolia does). Paging
alone read 1,000 of 1,350 on every run, so every run was partial and a sold car was never
removed; read in parts by facet, the runs are complete. Where no facet covers every vehicle
the run stays partial and says so."""

from __future__ import annotations

import json

import pytest

from crawler.db import dealers as dealers_db
from tests.crawling import active_vins, copy_site, crawl

pytestmark = pytest.mark.integration


def reasons(job) -> list[str]:
    return list((job.report or {}).get("reasons") or [])


def test_dealer_beyond_the_paging_limit_is_read_whole_and_a_sold_car_is_removed(
        db, site, tmp_path):
    """Split by stock type, then new cars (1,080, still beyond the limit) by model: every
    vehicle is read and the run is complete. The next day one car is sold and 12 half-entered
    vehicles (no type, make, model or year) appear: no facet covers them, the run is partial
    and removes nothing. Once they are gone, the sold car is removed."""
    root = copy_site(tmp_path, "dealerinspire-large")
    base = site(root)
    dealer = dealers_db.create(db, slug="harborview", name="Harborview Auto Park",
                               website_url=base + "/inventory/", platform="dealerinspire")
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", (job.error, reasons(job))
    before = active_vins(db, dealer.id)
    assert len(before) == 1350

    sold = "70005"  # a new RAV4
    (root / "options.json").write_text(json.dumps({"sold": [sold], "without_facets": 12}))
    job = crawl(db, dealer.id)
    assert job.state == "partial" and job.counters.get("removed", 0) == 0, \
        (job.state, reasons(job))
    assert active_vins(db, dealer.id) >= before
    assert any("declares 1,361 vehicles (nbHits) but paging reaches only 1,000, and no facet "
               "covers all its 1,361 hits" in r and "leaves 12 hits in no part" in r
               for r in reasons(job)), reasons(job)

    (root / "options.json").write_text(json.dumps({"sold": [sold]}))
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", (job.error, reasons(job))
    gone = before - active_vins(db, dealer.id)
    assert len(gone) == 1 and job.counters.get("removed") == 1, (gone, job.counters)
