"""Real crawls of the generic fixture site on 127.0.0.1 whose sitemaps cannot be read: a
sitemap is a discovery aid unless the inventory depends on it (spiders/generic.py)."""

from __future__ import annotations

import pytest

from crawler.db import dealers as dealers_db
from tests.crawling import active_vins, copy_site, crawl

pytestmark = pytest.mark.integration

CIVIC = "19XFC2F7XME104512"
ROGUE = "JN8BT3BB7NW300112"


def drop_lines(path, text: str) -> None:
    path.write_text("\n".join(line for line in path.read_text().splitlines()
                              if text not in line))


def test_dead_sitemap_is_a_warning_when_the_listing_pages_lead_to_every_vehicle(
        db, site, tmp_path):
    root = copy_site(tmp_path, "generic")
    base = site(root)
    dealer = dealers_db.create(db, slug="maple", name="Maple", website_url=base + "/inventory/")
    assert crawl(db, dealer.id).state == "succeeded"
    # the sitemap robots.txt names is gone (404), and the Civic is sold
    (root / "sitemap_index.xml").unlink()
    (next((root / "inventory").glob(f"*{CIVIC}.html"))).unlink()
    drop_lines(root / "inventory" / "index.html", CIVIC)

    job = crawl(db, dealer.id)
    assert job.state == "succeeded", job.error
    assert job.verdict == "healthy" and job.report["complete"] is True
    assert job.counters["removed"] == 1 and CIVIC not in active_vins(db, dealer.id)
    assert job.report["reasons"] == [f"warning: sitemap {base}/sitemap_index.xml not read "
                                     "(HTTP 404); the listing pages were read without it"]


def test_lost_sitemap_leaves_the_run_incomplete_when_only_the_sitemaps_lead_to_vehicles(
        db, site, tmp_path):
    root = copy_site(tmp_path, "generic")
    # the home page links to no inventory: the sitemaps are how the vehicles are found,
    # from two vehicle sitemaps
    (root / "index.html").write_text(
        "<!doctype html><html><head><title>Maple Ridge Motors</title></head><body>"
        "<a href='/about-us'>About us</a><p>Family-run since 1987.</p></body></html>")
    lines = (root / "sitemap-vehicles.xml").read_text().splitlines()
    urls = [line for line in lines if "<url>" in line]
    head, tail = lines[:2], lines[-1:]
    (root / "sitemap-vehicles.xml").write_text("\n".join(head + urls[:6] + tail))
    (root / "sitemap-vehicles-2.xml").write_text("\n".join(head + urls[6:] + tail))
    (root / "sitemap_index.xml").write_text((root / "sitemap_index.xml").read_text().replace(
        "</sitemapindex>",
        "<sitemap><loc>{{BASE}}/sitemap-vehicles-2.xml</loc></sitemap>\n</sitemapindex>"))
    base = site(root)
    dealer = dealers_db.create(db, slug="maple", name="Maple", website_url=base + "/")
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", job.error
    assert len(active_vins(db, dealer.id)) == 10

    (root / "sitemap-vehicles-2.xml").unlink()  # the second half's sitemap is gone: 404
    job = crawl(db, dealer.id)
    assert job.state == "partial" and job.report["complete"] is False
    assert job.counters["items"] == 6 and job.counters["removed"] == 0
    assert len(active_vins(db, dealer.id)) == 10
    assert f"sitemap {base}/sitemap-vehicles-2.xml not read (HTTP 404), and the listing " \
           "pages lead to no vehicles: the inventory is not known in full" in job.error
    assert "not_found" not in job.error


def test_lost_sitemap_leaves_the_run_incomplete_when_other_sitemaps_list_unlinked_vehicles(
        db, site, tmp_path):
    root = copy_site(tmp_path, "generic")
    # the listing pages lead to nine vehicles; the Civic is only in the vehicle sitemap
    drop_lines(root / "inventory" / "index.html", CIVIC)
    base = site(root)
    dealer = dealers_db.create(db, slug="maple", name="Maple", website_url=base + "/inventory/")
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", job.error
    assert CIVIC in active_vins(db, dealer.id) and len(active_vins(db, dealer.id)) == 10

    # a further sitemap is named and gone; the Rogue vanishes from the listing pages (it
    # may be among the lost sitemap's vehicles, so it must not be removed)
    (root / "sitemap_index.xml").write_text((root / "sitemap_index.xml").read_text().replace(
        "</sitemapindex>",
        "<sitemap><loc>{{BASE}}/sitemap-used.xml</loc></sitemap>\n</sitemapindex>"))
    drop_lines(root / "inventory__page-2.html", ROGUE)
    drop_lines(root / "sitemap-vehicles.xml", ROGUE)
    job = crawl(db, dealer.id)
    assert job.state == "partial" and job.report["complete"] is False
    assert job.counters["removed"] == 0 and ROGUE in active_vins(db, dealer.id)
    assert f"sitemap {base}/sitemap-used.xml not read (HTTP 404), and 1 vehicle page(s) the " \
           "other sitemaps list are linked from no listing page" in job.error
