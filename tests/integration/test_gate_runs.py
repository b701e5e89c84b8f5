"""The gate, cross-dealer duplicates, rescoring and webhooks, through pipelines/run.py with a
real PostgreSQL, and one real crawl of the generic fixture site on 127.0.0.1."""

from __future__ import annotations

import json
import re
import shutil
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from crawler.config import PROJECT_ROOT
from crawler.crawl_runner import run_crawl
from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from crawler.models import VehicleItem
from pipelines import quality as quality_stage
from pipelines import run as run_mod
from quality.score import RULES_VERSION
from tests.quality.test_vin_decoding_real import vpic_rows

pytestmark = pytest.mark.integration

HONDAS = [r for r in vpic_rows() if r["group"] == "test_honda_2024" and r["model"]][:60]


def item(row: dict, **kw) -> VehicleItem:
    fields = dict(source=f"row {row['vin']}", vin=row["vin"], make="Honda", model=row["model"],
                  year=row["model_year"], trim="EX", condition="used", mileage="12,000 mi",
                  price="$31,500", exterior_color="Blue", image_urls=[
                      f"https://cdn.test/{row['vin']}/{i}.jpg" for i in range(4)],
                  description="A well kept car with full service history and two keys.")
    fields.update(kw)
    return VehicleItem(**fields)


def run(db, dealer_id: int, items: list[VehicleItem], complete: bool = True) -> dict:
    job, created = jobs_db.create_or_get_active(db, dealer_id, "feed", "operator")
    assert created
    jobs_db.start(db, job.id, "test")
    r = run_mod.open_run(db, dealer_id, job.id, "feed")
    for start in range(0, len(items), 25):  # several batches, as a feed would
        run_mod.process(r, items[start:start + 25])
    report = run_mod.close(r, complete=complete)
    jobs_db.finish(db, job.id, report["state"], counters=report["counters"],
                   verdict=report["verdict"], report=report)
    report["job_id"] = job.id
    return report


def active(db, dealer_id: int) -> int:
    return db.execute("SELECT count(*) AS n FROM vehicles WHERE dealership_id = %s"
                      " AND status = 'active'", (dealer_id,)).fetchone()["n"]


@pytest.fixture
def dealer(db):
    return dealers_db.create(db, slug="honda-town", name="Honda Town",
                             website_url="https://honda.test/")


def baseline(db, dealer_id: int, runs: int = 2) -> None:
    for _ in range(runs):
        report = run(db, dealer_id, [item(r) for r in HONDAS[:50]])
        assert report["verdict"] == "healthy" and report["state"] == "succeeded"


def test_a_tenth_of_the_usual_count_removes_nothing_and_is_reported(db, dealer):
    baseline(db, dealer.id)
    report = run(db, dealer.id, [item(r) for r in HONDAS[:5]])
    assert report["verdict"] == "failed" and report["removed"] == 0
    assert "5 vehicles against a usual 50 (10%)" in report["reasons"]
    assert active(db, dealer.id) == 50
    job = jobs_db.get(db, report["job_id"])
    assert job.verdict == "failed" and job.report["reasons"] == report["reasons"]


def test_a_template_change_that_empties_a_field_updates_but_removes_nothing(db, dealer):
    baseline(db, dealer.id)
    report = run(db, dealer.id, [item(r, price=None) for r in HONDAS[:45]])
    assert report["verdict"] == "degraded" and report["state"] == "partial"
    assert report["reasons"] == ["price coverage 0% against a usual 100%"]
    assert report["removed"] == 0 and active(db, dealer.id) == 50
    seen = db.execute("SELECT count(*) AS n FROM vehicles WHERE price IS NULL"
                      " AND 'price_missing' = ANY(quality_flags)").fetchone()["n"]
    assert seen == 45  # what it saw is updated


def test_a_healthy_complete_run_removes_the_unseen(db, dealer):
    baseline(db, dealer.id)
    report = run(db, dealer.id, [item(r) for r in HONDAS[:48]])
    assert report["verdict"] == "healthy" and report["removed"] == 2
    assert active(db, dealer.id) == 48


def test_per_dealer_thresholds_change_the_verdict(db, dealer):
    dealers_db.update(db, dealer.id, settings={"gate": {"min_count_ratio": 0.1,
                                                        "fail_count_ratio": 0.05}})
    baseline(db, dealer.id)
    report = run(db, dealer.id, [item(r) for r in HONDAS[:20]])
    assert report["verdict"] == "healthy" and report["removed"] == 30


def flags_of(db, dealer_id: int) -> dict[str, list[str]]:
    return {r["vin"]: r["quality_flags"] for r in db.execute(
        "SELECT vin, quality_flags FROM vehicles WHERE dealership_id = %s", (dealer_id,))}


def test_the_same_vin_at_two_dealers_is_flagged_on_both_until_one_delists(db, dealer):
    other = dealers_db.create(db, slug="other-honda", name="Other Honda",
                              website_url="https://other.test/",
                              settings={"gate": {"min_count_ratio": 0.4}})
    run(db, dealer.id, [item(r) for r in HONDAS[:10]])
    shared = {r["vin"] for r in HONDAS[5:10]}
    run(db, other.id, [item(r) for r in HONDAS[5:15]])
    for dealer_id in (dealer.id, other.id):
        got = {v for v, f in flags_of(db, dealer_id).items() if "cross_dealer_duplicate" in f}
        assert got == shared
    scores = {r["vin"]: r["quality_score"] for r in db.execute(
        "SELECT vin, quality_score FROM vehicles WHERE dealership_id = %s", (dealer.id,))}
    first = HONDAS[0]["vin"]
    assert all(scores[v] == scores[first] - 10 for v in shared)
    # the other dealer sells them: its next healthy run no longer lists them
    report = run(db, other.id, [item(r) for r in HONDAS[10:15]])
    assert report["removed"] == 5
    assert not any("cross_dealer_duplicate" in f for f in flags_of(db, dealer.id).values())
    assert db.execute("SELECT count(*) AS n FROM vehicles WHERE quality_score = %s"
                      " AND dealership_id = %s", (scores[first], dealer.id)).fetchone()["n"] == 10


def test_placeholder_vins_are_never_cross_dealer_duplicates(db, dealer):
    other = dealers_db.create(db, slug="other-toyota", name="Other",
                              website_url="https://other.test/")
    placeholder = dict(source="row 1", vin="2T16CRAV7TC06D725", make="Toyota", model="RAV4",
                       year="2026", condition="new", price="39,664")
    run(db, dealer.id, [VehicleItem(**placeholder)])
    run(db, other.id, [VehicleItem(**placeholder)])
    row = db.execute("SELECT * FROM vehicles WHERE dealership_id = %s", (other.id,)).fetchone()
    assert row["vin_placeholder"] and "vin_placeholder" in row["quality_flags"]
    assert "cross_dealer_duplicate" not in row["quality_flags"]


def test_rescore_recomputes_vehicles_scored_under_older_rules(db, dealer):
    run(db, dealer.id, [item(r) for r in HONDAS[:30]] + [item(HONDAS[30], price=None)])
    before = {r["vin"]: (r["quality_score"], r["quality_flags"], r["content_hash"])
              for r in db.execute("SELECT * FROM vehicles")}
    db.execute("UPDATE vehicles SET rules_version = 1, quality_score = 100,"
               " quality_flags = '{}' WHERE vin <> %s", (HONDAS[0]["vin"],))
    counts = quality_stage.rescore(db, dealer.id, batch_size=7)
    assert counts == {"seen": 30, "changed": 30}
    after = {r["vin"]: (r["quality_score"], r["quality_flags"], r["content_hash"])
             for r in db.execute("SELECT * FROM vehicles")}
    assert after == before
    assert "price_missing" in after[HONDAS[30]["vin"]][1]
    assert db.execute("SELECT count(*) AS n FROM vehicles WHERE rules_version = %s",
                      (RULES_VERSION,)).fetchone()["n"] == 31
    assert quality_stage.rescore(db, dealer.id) == {"seen": 0, "changed": 0}
    # unchanged content after a rescore costs the next run no writes
    report = run(db, dealer.id, [item(r) for r in HONDAS[:30]] + [item(HONDAS[30], price=None)])
    assert report["counters"]["changed"] == 0 and report["counters"]["unchanged"] == 31


def test_price_far_from_the_market_is_flagged_from_database_medians(db, dealer):
    civic = [r for r in vpic_rows() if r["group"] == "test_honda_2024"
             and r["model"] == HONDAS[0]["model"] and r["model_year"] == HONDAS[0]["model_year"]]
    assert len(civic) >= 6
    run(db, dealer.id, [item(r) for r in civic[:5]])
    report = run(db, dealer.id, [item(r) for r in civic[:5]] + [item(civic[5], price="$9,000")])
    assert report["verdict"] == "healthy"
    flags = flags_of(db, dealer.id)
    assert "price_outlier" in flags[civic[5]["vin"]]
    assert not any("price_outlier" in flags[r["vin"]] for r in civic[:5])


class Hook:
    """A real local HTTP server that records webhook POSTs, failing the first `fail` ones."""

    def __init__(self, fail: int = 0):
        self.bodies: list[dict] = []
        self.attempts = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                hook.attempts += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = 500 if hook.attempts <= fail else 204
                if status == 204:
                    hook.bodies.append(json.loads(body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    servers = []

    def start(fail: int = 0) -> Hook:
        servers.append(Hook(fail))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def test_webhook_hears_of_an_unhealthy_run_after_a_retry(db, dealer, hook):
    server = hook(fail=1)
    dealers_db.update(db, dealer.id, webhook_url=server.url)
    baseline(db, dealer.id)
    assert server.bodies == []  # healthy runs send nothing
    report = run(db, dealer.id, [item(r) for r in HONDAS[:5]])
    assert report["webhook_sent"] is True and server.attempts == 2
    (notice,) = server.bodies
    assert notice["event"] == "run.unhealthy" and notice["dealership"] == "honda-town"
    assert notice["job_id"] == report["job_id"] and notice["verdict"] == "failed"
    assert notice["reasons"] == report["reasons"] and notice["removed"] == 0


def test_an_unreachable_webhook_is_logged_not_fatal(db, dealer, hook, caplog):
    server = hook()
    url = server.url
    server.close()  # nothing listens there any more
    dealers_db.update(db, dealer.id, webhook_url=url)
    report = run(db, dealer.id, [item(r) for r in HONDAS[:5]], complete=False)
    assert report["verdict"] == "degraded" and report["webhook_sent"] is False
    assert any("webhook" in r.getMessage() for r in caplog.records)


GENERIC = PROJECT_ROOT / "fixtures" / "sites" / "generic"


def test_real_crawl_whose_template_drops_mileage_removes_nothing_and_notifies(
        db, site, tmp_path, hook):
    root = tmp_path / "site"
    shutil.copytree(GENERIC, root)
    base = site(root)
    server = hook()
    dealer = dealers_db.create(db, slug="maple", name="Maple", website_url=base + "/inventory/",
                               webhook_url=server.url)

    def crawl():
        job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
        jobs_db.start(db, job.id, "test")
        return run_crawl(job.id, time_limit_s=120)

    first = crawl()
    assert first.verdict == "healthy" and first.counters["coverage_mileage"] >= 8
    assert server.bodies == []
    # the site's new template no longer carries mileage, and one car is gone from it
    for page in (root / "inventory").glob("*.html"):
        text = re.sub(r'"mileageFromOdometer":\s*\{[^}]*\},?', "", page.read_text())
        page.write_text(re.sub(r"[\d,]+ ?(mi|km)\b", "", text))
    gone = next((root / "inventory").glob("*19XFC2F7XME104512.html"))
    gone.unlink()
    second = crawl()
    assert second.verdict == "degraded" and second.state == "partial"
    assert any(r.startswith("mileage coverage 0%") for r in second.report["reasons"])
    assert second.counters["removed"] == 0
    assert db.execute("SELECT count(*) AS n FROM vehicles WHERE status = 'active'"
                      ).fetchone()["n"] == 10
    (notice,) = server.bodies
    assert notice["verdict"] == "degraded" and notice["job_id"] == second.id
    assert Decimal(str(notice["coverage"]["mileage"])) == 0


def test_the_same_photo_on_two_vehicles_is_flagged_on_both(db, dealer):
    stock = ["https://cdn.test/stock/civic-front.jpg",
             *[f"https://cdn.test/x/{i}.jpg" for i in range(3)]]
    items = [item(r) for r in HONDAS[:40]]
    items[0] = item(HONDAS[0], image_urls=stock)
    items[30] = item(HONDAS[30], image_urls=stock)  # a later batch of the same run
    run(db, dealer.id, items)
    flags = flags_of(db, dealer.id)
    assert "photo_reused" in flags[HONDAS[30]["vin"]]  # found in the database
    run(db, dealer.id, items)
    flags = flags_of(db, dealer.id)
    assert {v for v, f in flags.items() if "photo_reused" in f} == \
        {HONDAS[0]["vin"], HONDAS[30]["vin"]}


def test_a_stock_photo_on_many_listings_is_read_from_a_few_and_still_flags(
        db, dealer, monkeypatch):
    from crawler.db import quality as quality_db

    monkeypatch.setattr(quality_db, "HERO_USERS_MAX", 3)
    stock = ["https://cdn.test/stock/maker-front.jpg",
             *[f"https://cdn.test/y/{i}.jpg" for i in range(3)]]
    run(db, dealer.id, [item(r, image_urls=stock) for r in HONDAS[:8]])
    users = quality_db.hero_photo_users(db, [stock[0]])[stock[0]]
    assert 1 < len(users) <= 3 and users <= {r["vin"] for r in HONDAS[:8]}
    other = dealers_db.create(db, slug="other-lot", name="Other Lot")
    run(db, other.id, [item(HONDAS[20], image_urls=stock)])
    assert "photo_reused" in flags_of(db, other.id)[HONDAS[20]["vin"]]
    assert all("photo_reused" in f for f in flags_of(db, dealer.id).values())
