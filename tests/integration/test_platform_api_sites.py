"""Real crawls of the Dealer.com, DealerInspire and DealerOn fixture sites on 127.0.0.1 into a
real PostgreSQL: the platform APIs (POST getInventory, the search index), pagination, prices
and availability as stored, rejects, VIN traps, and the fallback chain."""

from __future__ import annotations

import json
import shutil

import pytest

from crawler.config import PROJECT_ROOT
from crawler.db import dealers as dealers_db
from tests.crawling import crawl
from tests.crawling import vehicles_by_vin as stored

pytestmark = pytest.mark.integration

SITES = PROJECT_ROOT / "fixtures" / "sites"




def assert_traps_ignored(page: str, traps: set[str], cars: dict) -> None:
    """VIN-shaped strings the page really carries (analytics, redirects, old links) and that
    must not have become vehicles."""
    text = (SITES / page).read_text().upper()
    assert all(trap in text for trap in traps)
    assert not traps & set(cars)


def money(value) -> float | None:
    return None if value is None else float(value)


def test_dealercom_site_is_crawled_through_the_getinventory_api(db, site):
    base = site("dealercom")
    dealer = dealers_db.create(db, slug="larkspur", name="Larkspur Valley Honda",
                               website_url=base + "/", platform="dealercom")
    job = crawl(db, dealer.id)  # the home page leads to /all-inventory/index.htm, then the API
    assert job.state == "succeeded", (job.error, job.report)
    cars = stored(db, dealer.id)
    assert len(cars) == 20  # two API pages (start=0, start=12), 21 entries, one without a VIN
    pilot = cars["5FNYG1H80SB012233"]  # its MSRP line is labelled "Price": the final one wins
    assert (money(pilot["price"]), money(pilot["msrp"])) == (47880, 49995)
    prologue = cars["5J8ZE1H42RL005512"]  # the line marked final (after incentives)
    assert (money(prologue["price"]), money(prologue["msrp"])) == (39295, 48795)
    assert cars["3CZRZ1H34SM700812"]["price"] is None  # "Call for Price"
    assert cars["2HGFE1E50SH700123"]["price"] is None  # "$1"
    assert money(cars["2HGFE1E50SH700123"]["msrp"]) == 30100
    assert money(cars["4S4BSANC9K3245016"]["price"]) == 21250  # no final line: internet price
    assert cars["1FMCU9G60LUA41236"]["condition"] == "used"  # sent as a lower-case VIN
    assert cars["1HGCV1F35NA031477"]["condition"] == "certified"
    assert cars["2HGFE2F55RH512034"]["availability"] == "In Transit"
    assert cars["1HGCY1F30RA044120"]["availability"] == "In Production"
    assert cars["JM3KFBCM4L1812330"]["mileage"] == 37604
    assert cars["7FARS3H83RE012451"]["url"].startswith(base + "/new/Honda/2024-Honda-CR-V")
    # the analytics copy of a sold car, the redirect map and the old link never become vehicles
    assert_traps_ignored("dealercom/all-inventory/index.htm",
                         {"1HGCR2F56GA000317", "4T1BF1FK6GU204418"}, cars)
    rejects = db.execute("SELECT * FROM rejects").fetchall()
    assert [r["reasons"] for r in rejects] == [["missing VIN"]]
    assert rejects[0]["payload"]["model"] == "Soul"
    assert job.counters["added"] == 20 and job.counters["rejected"] == 1


def test_dealerinspire_site_is_crawled_through_its_search_index(db, site, tmp_path):
    root = tmp_path / "site"
    shutil.copytree(SITES / "dealerinspire", root)
    base = site(root)
    dealer = dealers_db.create(db, slug="bayside", name="Bayside Harbor Toyota",
                               website_url=base + "/inventory/", platform="dealerinspire")
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", (job.error, job.report)
    cars = stored(db, dealer.id)
    assert len(cars) == 22  # three index pages of 10, 10 and 2 hits
    camry = cars["4T1DAACK0SU020418"]  # the index sent it in lower case
    assert (money(camry["price"]), money(camry["msrp"])) == (30995, 31795)
    tundra = cars["5TFJA5DB3SX031960"]  # our_price 0, "Call For Price"
    assert tundra["price"] is None and money(tundra["msrp"]) == 62450
    assert cars["5TDJSKFC3SS098212"]["price"] is None  # our_price 1
    assert cars["4T3E6RFV7SU071139"]["availability"] == "In Transit"
    assert cars["3TYLB5JN7ST042281"]["availability"] == "In Production"  # "Build Phase"
    placeholder = cars["5TDAAAB50TS00XXXX"]  # still being built: a placeholder VIN, kept
    assert placeholder["vin_placeholder"] and placeholder["availability"] == "In Production"
    rav4 = cars["2T3H1RFV8NW188342"]
    assert rav4["condition"] == "certified" and rav4["mileage"] == 24410
    assert rav4["msrp"] is None  # msrp 0 on a used car is no MSRP
    assert_traps_ignored("dealerinspire/inventory/index.html",  # analytics, redirects
                         {"4T1BF1FKXFU000512", "JTDKARFU1J3041189"}, cars)
    assert job.counters["added"] == 22 and job.counters["rejected"] == 0
    # the key rotates but the page still carries the old one: the index refuses (403); the
    # run says it was blocked and removes nothing
    page = root / "inventory" / "index.html"
    page.write_text(page.read_text().replace("5c2e9f1a7b3d4e6f8091a2b3c4d5e6f7", "0" * 32))
    job = crawl(db, dealer.id)
    assert job.state != "succeeded"
    assert "blocked" in json.dumps(job.report) and "HTTP 403" in json.dumps(job.report)
    assert job.counters["removed"] == 0
    active = db.execute("SELECT count(*) AS n FROM vehicles WHERE status = 'active'").fetchone()
    assert active["n"] == 22


def test_dealeron_site_is_crawled_from_its_listing_cards_across_pages(db, site):
    base = site("dealeron")
    dealer = dealers_db.create(db, slug="riverbend", name="Riverbend Chevrolet",
                               website_url=base + "/searchall.aspx", platform="dealeron")
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", (job.error, job.report)
    cars = stored(db, dealer.id)
    assert len(cars) == 15  # 12 on ?pt=1, 3 on ?pt=2
    blazer = cars["3GNKDBRJXRS147203"]  # internet price, not the conditional-rebate price
    assert (money(blazer["price"]), money(blazer["msrp"])) == (49090, 52090)
    assert blazer["availability"] == "In Transit"
    trax = cars["KL77LHE25SC031208"]  # its analytics tag says 995 (a fee): never the price
    assert money(trax["price"]) == 23195
    assert cars["1FMCU9HD4KUA20188"]["price"] is None  # data-price "0", no price library
    assert cars["1GNSKPKDXSR188107"]["availability"] == "In Production"
    assert cars["1GCPTDEK1R1240611"]["condition"] == "new"  # a lower-case data-vin
    assert cars["3GNAXXEVXNL301177"]["condition"] == "certified"
    assert cars["3GNAXKEG9RL214087"]["exterior_color"] == "Radiant Red Tintcoat"
    assert cars["3GNAXKEG9RL214087"]["url"].endswith("-3GNAXKEG9RL214087")
    assert_traps_ignored("dealeron/searchall.aspx.html",  # tagging data, redirects, links
                         {"1G1ZD5ST0HF009931", "1GNKVGKD4FJ220187"}, cars)
    assert job.counters["added"] == 15 and job.counters["rejected"] == 0


DATA_VIN_PAGE = """<html><head><title>Inventory | Oak Hollow Motors</title></head><body>
<div class="car" data-vin="1HGCV1F30RA000001" data-year="2024" data-make="Honda"
     data-model="Accord" data-price="$28,400" data-msrp="$29,900" data-status="In Transit">
  <a href="/cars/1HGCV1F30RA000001">2024 Honda Accord</a>
  <button class="save" data-vin="1HGCV1F30RA000001">Save</button></div>
<div class="car" data-vin="5TDKDRBH2SS210877" data-year="2025" data-make="Toyota"
     data-model="Highlander" data-price="0" data-mileage="12 mi"></div>
<div class="tracking" data-vin="1FMCU9G60LUA41236"></div>
</body></html>"""


def test_platform_page_without_its_api_falls_back_to_data_vin_attributes(db, site, tmp_path):
    root = tmp_path / "oak"
    (root / "inventory").mkdir(parents=True)
    (root / "inventory" / "index.html").write_text(DATA_VIN_PAGE)
    base = site(root)
    # set up as Dealer.com, but the page has no getInventory call and no structured data
    dealer = dealers_db.create(db, slug="oak", name="Oak Hollow", platform="dealercom",
                               website_url=base + "/inventory/")
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", (job.error, job.report)
    cars = stored(db, dealer.id)
    assert set(cars) == {"1HGCV1F30RA000001", "5TDKDRBH2SS210877"}  # not the tracking tag
    accord = cars["1HGCV1F30RA000001"]
    assert (money(accord["price"]), money(accord["msrp"])) == (28400, 29900)
    assert accord["availability"] == "In Transit"
    assert accord["url"] == base + "/cars/1HGCV1F30RA000001"
    assert cars["5TDKDRBH2SS210877"]["price"] is None
