"""Real crawls of the generic fixture site on 127.0.0.1 into a real PostgreSQL."""

from __future__ import annotations

import shutil

import pytest

from crawler.config import PROJECT_ROOT
from crawler.db import dealers as dealers_db
from tests.crawling import crawl

pytestmark = pytest.mark.integration

GENERIC = PROJECT_ROOT / "fixtures" / "sites" / "generic"
EXPECTED_VINS = {
    "19XFC2F7XME104512", "2T3P1RFV7PC338201", "1FTFW1E8XNFA20418", "3GNAXKEG2RS112233",
    "3VW6T7AU3KM022910", "4S4BTACC1L3210987", "KM8JBCD16RU412377", "W1KAF4HB3MR023456",
    "1C4HJXDG2NW150034", "JN8BT3BB7NW300112",
}


def test_crawl_stores_every_vehicle_with_events_and_rejects(db, site):
    base = site("generic")
    dealer = dealers_db.create(db, slug="maple", name="Maple", website_url=base + "/inventory/")
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", job.error
    assert job.verdict == "healthy"
    rows = db.execute("SELECT * FROM vehicles WHERE dealership_id = %s", (dealer.id,)).fetchall()
    assert {r["vin"] for r in rows} == EXPECTED_VINS
    by_vin = {r["vin"]: r for r in rows}
    golf = by_vin["3VW6T7AU3KM022910"]  # old `VIN` property, lower case with a space, km
    assert golf["mileage"] == 32995 and float(golf["price"]) == 18000
    outback = by_vin["4S4BTACC1L3210987"]  # microdata, "Call for price"
    assert outback["price"] is None and "price_missing" in outback["quality_flags"]
    rogue = by_vin["JN8BT3BB7NW300112"]  # "$1" placeholder price is never stored
    assert rogue["price"] is None
    assert all(r["status"] == "active" and r["last_job_id"] == job.id for r in rows)
    events = db.execute("SELECT kind, count(*) AS n FROM vehicle_events GROUP BY kind").fetchall()
    assert {e["kind"]: e["n"] for e in events} == {"added": 10}
    rejects = db.execute("SELECT * FROM rejects").fetchall()
    assert len(rejects) == 1 and rejects[0]["reasons"] == ["missing VIN"]
    assert rejects[0]["payload"]["model"] == "Soul"
    assert job.counters["added"] == 10 and job.counters["rejected"] == 1
    assert job.counters["pages"] >= 12
    # robots.txt forbids /inventory/private/: the Audi linked from the listing is never fetched
    assert "WAUENAF42LA000777" not in by_vin
    from crawler.crawl_runner import log_path

    assert "robotstxt/forbidden': 1" in log_path(job.id).read_text()


def test_recrawl_of_unchanged_site_writes_nothing(db, site):
    base = site("generic")
    dealer = dealers_db.create(db, slug="maple", name="Maple", website_url=base + "/inventory/")
    crawl(db, dealer.id)
    before = db.execute("SELECT vin, updated_at FROM vehicles ORDER BY vin").fetchall()
    job = crawl(db, dealer.id)
    assert job.state == "succeeded"
    assert job.counters["added"] == 0 and job.counters["changed"] == 0
    assert job.counters["unchanged"] == 10 and job.counters["removed"] == 0
    after = db.execute("SELECT vin, updated_at FROM vehicles ORDER BY vin").fetchall()
    assert before == after
    assert db.execute("SELECT count(*) AS n FROM vehicle_events").fetchone()["n"] == 10


def _copy_site(tmp_path):
    target = tmp_path / "site"
    shutil.copytree(GENERIC, target)
    return target


def test_vehicle_gone_from_healthy_run_is_removed_then_relisted(db, site, tmp_path):
    root = _copy_site(tmp_path)
    base = site(root)
    dealer = dealers_db.create(db, slug="maple", name="Maple", website_url=base + "/inventory/")
    crawl(db, dealer.id)
    page = next((root / "inventory").glob("*19XFC2F7XME104512.html"))
    hidden = page.read_text()
    page.unlink()
    for listing in (root / "inventory" / "index.html", root / "inventory__page-2.html",
                    root / "sitemap-vehicles.xml"):
        listing.write_text("\n".join(line for line in listing.read_text().splitlines()
                                     if "19XFC2F7XME104512" not in line))
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", job.report
    assert job.counters["removed"] == 1
    civic = db.execute("SELECT * FROM vehicles WHERE vin = '19XFC2F7XME104512'").fetchone()
    assert civic["status"] == "removed" and civic["removed_at"] is not None
    # it comes back, cheaper, listed in the sitemap again
    page.write_text(hidden.replace("$21,450", "$20,950"))
    shutil.copy(GENERIC / "sitemap-vehicles.xml", root / "sitemap-vehicles.xml")
    job = crawl(db, dealer.id)
    assert job.counters["relisted"] == 1
    civic = db.execute("SELECT * FROM vehicles WHERE vin = '19XFC2F7XME104512'").fetchone()
    assert civic["status"] == "active" and civic["removed_at"] is None
    kinds = [r["kind"] for r in db.execute(
        "SELECT kind FROM vehicle_events WHERE vin = '19XFC2F7XME104512' ORDER BY id")]
    assert kinds == ["added", "removed", "relisted", "price_changed"]
    change = db.execute("SELECT * FROM vehicle_events WHERE kind = 'price_changed'").fetchone()
    assert float(change["old_value"]["price"]) == 21450
    assert float(change["new_value"]["price"]) == 20950


def test_a_store_batch_that_fails_fails_the_crawl_and_removes_nothing(db, site):
    """A batch whose write fails on a connection that stays up (a deadlock victim, a
    statement timeout): its vehicles were neither stored nor seen. The crawl used to go on
    and settle as a healthy complete run, removing them although still listed; now it stops,
    removes nothing and fails as transient (retried)."""
    from jobs.outcome import TRANSIENT, classify_settled

    base = site("generic")
    dealer = dealers_db.create(db, slug="maple", name="Maple", website_url=base + "/inventory/",
                               settings={"scrapy": {"FORECOURT_BATCH_SIZE": 2}})
    assert crawl(db, dealer.id).state == "succeeded"
    # the batch holding the Civic (unchanged: remembered as seen) is a deadlock's victim
    db.execute("CREATE FUNCTION test_deadlock() RETURNS trigger LANGUAGE plpgsql AS $$"
               " BEGIN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END $$")
    db.execute("CREATE TRIGGER test_deadlock BEFORE INSERT ON run_seen FOR EACH ROW"
               " WHEN (NEW.vin = '19XFC2F7XME104512') EXECUTE FUNCTION test_deadlock()")
    try:
        job = crawl(db, dealer.id)
    finally:
        db.execute("DROP TRIGGER test_deadlock ON run_seen")
        db.execute("DROP FUNCTION test_deadlock()")
    active = db.execute("SELECT count(*) AS n FROM vehicles WHERE status = 'active'").fetchone()
    assert active["n"] == 10, job.report
    assert job.state == "failed" and classify_settled(job) == TRANSIENT, (job.state, job.error)
    assert "deadlock detected" in job.error
    assert db.execute("SELECT count(*) AS n FROM run_seen").fetchone()["n"] == 0


def test_crawl_finding_a_fraction_of_usual_inventory_removes_nothing(db, site, tmp_path):
    root = _copy_site(tmp_path)
    base = site(root)
    dealer = dealers_db.create(db, slug="maple", name="Maple", website_url=base + "/inventory/")
    crawl(db, dealer.id)
    # the site "changes template": most detail pages now carry no structured data
    for page in list((root / "inventory").glob("*.html"))[:-2]:
        if page.name != "index.html":
            page.write_text("<html><title>Vehicle</title><body>new template</body></html>")
    job = crawl(db, dealer.id)
    assert job.state in ("partial", "failed")
    assert job.verdict in ("degraded", "failed")
    assert job.counters["removed"] == 0
    active = db.execute("SELECT count(*) AS n FROM vehicles WHERE status = 'active'").fetchone()
    assert active["n"] == 10


def test_blocked_listing_page_fails_the_run_and_removes_nothing(db, site, tmp_path):
    root = _copy_site(tmp_path)
    base = site(root)
    dealer = dealers_db.create(db, slug="maple", name="Maple", website_url=base + "/inventory/")
    crawl(db, dealer.id)
    (root / "inventory" / "index.html").write_text(
        "<html><head><title>Just a moment...</title></head><body>"
        "<div id='cf-challenge'>Checking your browser</div></body></html>")
    (root / "sitemap-vehicles.xml").write_text("<urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'></urlset>")
    job = crawl(db, dealer.id)
    assert job.state == "blocked"
    assert "blocked" in (job.error or "")
    assert db.execute("SELECT count(*) AS n FROM vehicles WHERE status = 'active'"
                      ).fetchone()["n"] == 10
