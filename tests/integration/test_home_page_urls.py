"""Real crawls of the DealerVenom, Dealer eProcess and Team Velocity fixture sites on
127.0.0.1 from the site's root (the dealer's home page) rather than a results page: the
spider goes on to the platform's results pages (spiders/cards.py) and finds the inventory."""

from __future__ import annotations

import pytest

from crawler.db import dealers as dealers_db
from tests.crawling import copy_site, crawl, logged_stats
from tests.crawling import vehicles_by_vin as vehicles

pytestmark = pytest.mark.integration

DEALERVENOM = {"5XYK53DF0SG201145", "KNDNB5H36S6154420", "KNDPUCDG1S7233018",
               "5XXG64J27SG303377", "KNDJ23AU2N7801562"}  # /new-vehicles/ and /used-vehicles/
CERTIFIED = {"5XXG64J26PG218845", "5XYRL4LC2NG104633", "KNDPM3AC0M7880921"}
DEALEREPROCESS = {"4T1G11AK5SU123401", "2T3P1RFV4SW087712", "3TMLB5JN9SM044190",
                  "5TDKDRAH2MS061245", "1HGCV1F34KA105533", "5YFB4MDE5SP210077"}
TEAMVELOCITY = {"JN8BT3BB8SW120455", "1N4BL4DW0SN301188", "5N1DR3BD8SC440912",
                "3N1AB8CVXMY210334", "JN1BJ1AW9MW455871",
                "1N4BL4CV2LC274310"}  # the last from /inventory/used


@pytest.mark.parametrize("platform, expected", [
    ("dealervenom", DEALERVENOM), ("dealereprocess", DEALEREPROCESS),
    ("teamvelocity", TEAMVELOCITY)])
def test_a_home_page_url_leads_to_the_platforms_results_pages(db, site, platform, expected):
    base = site(platform)
    dealer = dealers_db.create(db, slug=platform, name=platform, website_url=base + "/",
                               platform=platform)
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", job.error
    assert job.verdict == "healthy" and job.report["complete"] is True
    assert set(vehicles(db, dealer.id)) == expected
    assert job.report["reasons"] == []
    assert "rendered" not in job.counters  # the home page is not rendered in the browser
    assert logged_stats(job.id)["forecourt/home_page"] == 1


def test_dealervenom_home_page_without_links_uses_the_known_results_paths(db, site, tmp_path):
    root = copy_site(tmp_path, "dealervenom")
    (root / "index.html").write_text(
        "<!doctype html><html><head><title>Juniper Valley Kia</title>"
        "<link rel='stylesheet' href='/wp-content/themes/dealervenom/style.css'></head>"
        "<body class='dealervenom'><main>Welcome</main></body></html>")
    base = site(root)
    dealer = dealers_db.create(db, slug="juniper", name="Juniper Valley Kia",
                               website_url=base, platform="dealervenom")
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", job.error
    assert set(vehicles(db, dealer.id)) == DEALERVENOM


def test_dealervenom_home_page_links_to_more_results_pages_are_followed(db, site, tmp_path):
    root = copy_site(tmp_path, "dealervenom")
    home = (root / "index.html").read_text()
    (root / "index.html").write_text(home.replace(
        '<a href="/used-vehicles/">Used</a>',
        '<a href="/used-vehicles/">Used</a> <a href="/certified-vehicles/">Certified</a>'
        ' <a href="/vehicle/New/2025/Kia/K5/5XXG64J27SG303377/">Featured K5</a>'))
    base = site(root)
    dealer = dealers_db.create(db, slug="juniper", name="Juniper Valley Kia",
                               website_url=base + "/", platform="dealervenom")
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", job.error
    # the certified results are drawn by scripts: that page, not the home page, is rendered
    assert set(vehicles(db, dealer.id)) == DEALERVENOM | CERTIFIED
    assert job.report["rendered_pages"] == [base + "/certified-vehicles/",
                                            base + "/certified-vehicles/?pg=2"]


def test_a_dealereprocess_home_page_linking_no_results_page_is_not_taken_for_a_sell_out(
        db, site, tmp_path):
    root = copy_site(tmp_path, "dealereprocess")
    (root / "index.html").write_text((root / "index.html").read_text().replace(
        "/search/all-cedar-hollow-or/?s:pr=1&amp;tp=all", "/contact/"))
    base = site(root)
    dealer = dealers_db.create(db, slug="cedar", name="Cedar Hollow Toyota",
                               website_url=base + "/", platform="dealereprocess")
    job = crawl(db, dealer.id)
    assert job.state == "failed" and job.report["complete"] is False
    assert f"no vehicles found on {base}/" in job.error
