"""Real crawls of the Dealer eProcess, DealerVenom and Team Velocity fixture sites on 127.0.0.1
into a real PostgreSQL: cards, pagination, detail pages / the vehicle API, prices, in-transit
status, VIN traps; then the same dealer blocked, soft-404'd or emptied, and its stored
inventory surviving."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal

import pytest

from crawler.config import PROJECT_ROOT
from crawler.db import dealers as dealers_db
from tests.crawling import crawl
from tests.crawling import vehicles_by_vin as vehicles

pytestmark = pytest.mark.integration

SITES = PROJECT_ROOT / "fixtures" / "sites"




def active(db, dealer_id: int) -> int:
    return db.execute("SELECT count(*) AS n FROM vehicles WHERE dealership_id = %s AND "
                      "status = 'active'", (dealer_id,)).fetchone()["n"]


def copy_site(tmp_path, name: str):
    target = tmp_path / name
    shutil.copytree(SITES / name, target)
    return target


def money(value) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(Decimal("0.01"))


DEP_LISTING = "/search/all-cedar-hollow-or/?s:pr=1&tp=all"
DEP_LISTING_FILE = "search/all-cedar-hollow-or__s:pr-1_tp-all.html"


def test_dealereprocess_site_crawls_then_datadome_block_and_empty_page_keep_inventory(
        db, site, tmp_path):
    root = copy_site(tmp_path, "dealereprocess")
    base = site(root)
    dealer = dealers_db.create(db, slug="cedar", name="Cedar Hollow Toyota",
                               website_url=base + DEP_LISTING, platform="dealereprocess")
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", job.error
    got = vehicles(db, dealer.id)
    assert set(got) == {"4T1G11AK5SU123401", "2T3P1RFV4SW087712", "3TMLB5JN9SM044190",
                        "5TDKDRAH2MS061245", "1HGCV1F34KA105533", "5YFB4MDE5SP210077"}
    camry = got["4T1G11AK5SU123401"]  # advertised price below MSRP; discount line ignored
    assert (money(camry["price"]), money(camry["msrp"])) == (money(29980), money(31245))
    rav4 = got["2T3P1RFV4SW087712"]
    assert rav4["availability"] == "In Transit" and rav4["drivetrain"] == "AWD"
    assert money(got["3TMLB5JN9SM044190"]["price"]) == money(43850)  # dealer-branded ePrice
    assert got["1HGCV1F34KA105533"]["price"] is None  # "$0" card, "Call for Price" page
    corolla = got["5YFB4MDE5SP210077"]  # detail page 404s: the listing card stands in
    assert money(corolla["price"]) == money(22990) and corolla["model"] == "Corolla"
    # recently-viewed cards, similar-vehicle carousels, redirect maps, analytics VINs
    assert "JTDKARFU8G3017755" not in got and db.execute(
        "SELECT count(*) AS n FROM rejects").fetchone()["n"] == 0
    assert job.counters["pages"] >= 8

    # DataDome answers the listing with its challenge (HTTP 403)
    (root / DEP_LISTING_FILE).write_text(
        (root / "cases" / "datadome-challenge.html").read_text())
    (root / "routes.json").write_text(json.dumps(
        {"/search/all-cedar-hollow-or/": {"serve_status": 403}}))
    job = crawl(db, dealer.id)
    assert job.state == "blocked"
    assert "blocked listing page" in job.error
    assert job.counters.get("removed", 0) == 0 and active(db, dealer.id) == 6

    # the challenge is gone but the results page now says "0 Vehicles": not a sell-out
    (root / "routes.json").write_text("{}")
    (root / DEP_LISTING_FILE).write_text((root / "cases" / "empty-search.html").read_text())
    job = crawl(db, dealer.id)
    assert job.state == "failed" and job.verdict == "failed"
    assert "no vehicles found" in job.error
    assert job.counters.get("removed", 0) == 0 and active(db, dealer.id) == 6


def test_dealervenom_site_crawls_then_a_cloudflare_challenge_keeps_inventory(db, site, tmp_path):
    root = copy_site(tmp_path, "dealervenom")
    base = site(root)
    dealer = dealers_db.create(db, slug="juniper", name="Juniper Valley Kia",
                               website_url=base + "/new-vehicles/", platform="dealervenom",
                               settings={"listing_urls": [base + "/used-vehicles/"]})
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", job.error
    got = vehicles(db, dealer.id)
    assert set(got) == {"5XYK53DF0SG201145", "KNDNB5H36S6154420", "KNDPUCDG1S7233018",
                        "5XXG64J27SG303377", "KNDJ23AU2N7801562"}
    sportage = got["5XYK53DF0SG201145"]
    assert (money(sportage["price"]), money(sportage["msrp"])) == (money(31990), money(33290))
    assert got["KNDNB5H36S6154420"]["availability"] == "Sale Pending - In Transit"
    hybrid = got["KNDPUCDG1S7233018"]  # allocated: in production; rebate line ignored
    assert hybrid["availability"] == "In Production" and money(hybrid["price"]) == money(40390)
    soul = got["KNDJ23AU2N7801562"]  # "$1" placeholder is never the price
    assert soul["price"] is None and soul["condition"] == "used" and soul["mileage"] == 36540
    assert "KNDJN2A28H7000123" not in got and "5XYK33DF1SG999001" not in got

    # Cloudflare's interstitial served with 200 in place of the new-vehicle results
    (root / "new-vehicles" / "index.html").write_text(
        (root / "cases" / "cloudflare-challenge.html").read_text())
    job = crawl(db, dealer.id)
    assert job.state == "blocked"
    assert "blocked listing page" in job.error
    assert job.counters.get("removed", 0) == 0 and active(db, dealer.id) == 5


def test_teamvelocity_site_crawls_via_vehicle_api_then_a_soft_404_keeps_inventory(
        db, site, tmp_path):
    root = copy_site(tmp_path, "teamvelocity")
    base = site(root)
    dealer = dealers_db.create(db, slug="bayshore", name="Bayshore Nissan",
                               website_url=base + "/inventory/new", platform="teamvelocity")
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", job.error
    got = vehicles(db, dealer.id)
    assert set(got) == {"JN8BT3BB8SW120455", "1N4BL4DW0SN301188", "5N1DR3BD8SC440912",
                        "3N1AB8CVXMY210334", "JN1BJ1AW9MW455871"}
    rogue = got["JN8BT3BB8SW120455"]  # buy-for price beats selling price; MSRP kept apart
    assert (money(rogue["price"]), money(rogue["msrp"])) == (money(32780), money(34480))
    assert rogue["interior_color"] == "Charcoal Cloth"  # only the API has it
    assert got["1N4BL4DW0SN301188"]["availability"] == "Sale Pending - In Transit"
    pathfinder = got["5N1DR3BD8SC440912"]  # sellingPrice 0 is a placeholder, not a price
    assert pathfinder["price"] is None and money(pathfinder["msrp"]) == money(45710)
    assert pathfinder["availability"] == "In Production"
    rogue_sport = got["JN1BJ1AW9MW455871"]  # its API answers 404: the card stands in
    assert money(rogue_sport["price"]) == money(19495)
    assert rogue_sport["condition"] == "certified"
    assert "1N4AL3APXHC112233" not in got  # recently viewed / redirect map / sold link

    # the results URL now answers 200 with the site's "Page Not Found" page
    (root / "inventory" / "new.html").write_text((root / "cases" / "soft-404.html").read_text())
    job = crawl(db, dealer.id)
    assert job.state == "failed"
    assert "not_found listing page" in job.error
    assert job.counters.get("removed", 0) == 0 and active(db, dealer.id) == 5
