"""The inventory lifecycle, for feeds and crawls alike: added, price and status changes,
removal (never deletion) only after a complete healthy run, relisting, days on lot."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from crawler.config import PROJECT_ROOT
from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from crawler.db import vehicle_reads as reads_db
from crawler.errors import TakenOver
from crawler.models import VehicleItem
from ingest import feed_job
from pipelines import run as run_mod

sys.path.insert(0, str(PROJECT_ROOT / "fixtures" / "tools"))
import make_feed  # noqa: E402

pytestmark = pytest.mark.integration

CARS = {  # VIN -> (make, model, year)
    "19XFC2F7XME104512": ("Honda", "Civic", "2021"),
    "2T3P1RFV7PC338201": ("Toyota", "RAV4", "2023"),
    "1FTFW1E8XNFA20418": ("Ford", "F-150", "2022"),
    "3GNAXKEG2RS112233": ("Chevrolet", "Equinox", "2024"),
    "3VW6T7AU3KM022910": ("Volkswagen", "Jetta", "2019"),
}
CIVIC, RAV4, F150, EQUINOX, JETTA = CARS


def write_feed(path: Path, cars: dict[str, tuple[int, str]], truncated: bool = False) -> Path:
    """cars: VIN -> (price, status)."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["VIN", "Make", "Model", "Year", "SellingPrice", "Status"])
        for vin, (price, status) in cars.items():
            w.writerow([vin, *CARS[vin], f"${price:,}", status])
    if truncated:
        with path.open("a") as f:
            f.write(f'{JETTA},Volkswagen,"Jet')  # the download stopped mid-row
    return path


@pytest.fixture
def dealer(db):
    return dealers_db.create(db, slug="lot", name="Lot")


@pytest.fixture
def run_feed(db, dealer, tmp_path):
    counter = iter(range(1000))

    def run(cars, truncated=False):
        path = write_feed(tmp_path / f"feed{next(counter)}.csv", cars, truncated)
        job, _ = jobs_db.create_or_get_active(db, dealer.id, "feed", "operator")
        jobs_db.start(db, job.id, "test")
        return feed_job.run_job(db, job.id, path)
    return run


def run_rows(db, dealer, path: Path, rows: list[list[str]]):
    """A feed job over `rows` (make_feed's HEADER order) written to `path` as CSV."""
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([make_feed.HEADER, *rows])
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "feed", "operator")
    jobs_db.start(db, job.id, "test")
    return feed_job.run_job(db, job.id, path)


def vehicle(db, dealer, vin):
    return db.execute("SELECT * FROM vehicles WHERE dealership_id = %s AND vin = %s",
                      (dealer.id, vin)).fetchone()


def kinds(db, job):
    return sorted((e["kind"], e["vin"]) for e in db.execute(
        "SELECT kind, vin FROM vehicle_events WHERE job_id = %s", (job.id,)))


def test_added_changed_removed_and_relisted_with_old_and_new_values(db, dealer, run_feed):
    first = run_feed({CIVIC: (20000, "In Stock"), RAV4: (30000, "In Stock"),
                      F150: (40000, "In Stock")})
    assert kinds(db, first) == [("added", CIVIC), ("added", F150), ("added", RAV4)]

    second = run_feed({CIVIC: (19500, "In Stock"), RAV4: (30000, "Sale Pending")})
    assert second.state == "succeeded" and second.counters["removed"] == 1
    assert kinds(db, second) == [("price_changed", CIVIC), ("removed", F150),
                                 ("status_changed", RAV4)]
    ev = {e["kind"]: e for e in reads_db.events_for(db, dealer.id)}
    assert ev["price_changed"]["old_value"] == {"price": 20000.0}
    assert ev["price_changed"]["new_value"] == {"price": 19500.0}
    assert ev["status_changed"]["old_value"] == {"availability": "In Stock"}
    assert ev["status_changed"]["new_value"] == {"availability": "Sale Pending"}
    assert ev["removed"]["old_value"] == {"status": "active", "price": 40000.0}
    gone = vehicle(db, dealer, F150)
    assert gone is not None, "removed vehicles are kept, not deleted"
    assert gone["status"] == "removed" and gone["removed_at"] is not None

    third = run_feed({CIVIC: (19500, "In Stock"), RAV4: (30000, "Sale Pending"),
                      F150: (38000, "In Stock")})
    assert kinds(db, third) == [("price_changed", F150), ("relisted", F150)]
    back = vehicle(db, dealer, F150)
    assert back["status"] == "active" and back["removed_at"] is None
    assert third.counters["relisted"] == 1 and third.counters["unchanged"] == 2


def test_a_truncated_feed_removes_nothing(db, dealer, run_feed):
    run_feed({CIVIC: (20000, "In Stock"), RAV4: (30000, "In Stock"), F150: (1, "x")})
    partial = run_feed({CIVIC: (20000, "In Stock")}, truncated=True)
    assert partial.state == "partial" and partial.counters.get("removed", 0) == 0
    assert any(r.startswith("feed not read to its end: ") and "cut short" in r
               for r in partial.report["reasons"]), partial.report["reasons"]
    assert vehicle(db, dealer, RAV4)["status"] == "active"
    assert vehicle(db, dealer, F150)["status"] == "active"


def test_a_feed_that_cannot_be_read_on_is_not_called_truncated_when_it_is_not(db, dealer,
                                                                              tmp_path):
    """Every feed whose reading stopped early was reported "feed truncated: ...", also a
    CSV file read as XML ("Start tag expected, '<' not found, line 1, column 1"): nothing
    was cut, and the operator looked for a short download. The reader's own reason says
    whether it looks cut short."""
    path = write_feed(tmp_path / "feed.xml", {CIVIC: (20000, "In Stock")})
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "feed", "operator")
    jobs_db.start(db, job.id, "test")
    done = feed_job.run_job(db, job.id, path, fmt="xml")
    assert done.counters.get("removed", 0) == 0
    assert not any("truncated" in r for r in done.report["reasons"]), done.report["reasons"]
    assert any(r.startswith("feed not read to its end: the XML cannot be read")
               for r in done.report["reasons"]), done.report["reasons"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_feed_cut_between_fields_of_its_last_record_removes_nothing(db, dealer, tmp_path,
                                                                      run_feed, fmt):
    """Cut where the last record still parses as text (no open quote): short of fields, or
    JSON that does not close. Found by review: that record was a plain reject, the run
    healthy, and the cars past the cut were removed."""
    run_feed({CIVIC: (20000, "In Stock"), RAV4: (30000, "In Stock"), F150: (1, "x")})
    path = tmp_path / f"cut.{fmt}"
    if fmt == "csv":
        write_feed(path, {CIVIC: (20000, "In Stock")})
        with path.open("a") as f:
            f.write(f"{RAV4},Toyota,RAV4")  # 3 of 6 fields, and no line break
    else:
        whole = {"vin": CIVIC, "make": "Honda", "model": "Civic", "year": "2021",
                 "price": "20000"}
        path.write_text(json.dumps(whole) + f'\n{{"vin": "{RAV4}", "pri')
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "feed", "operator")
    jobs_db.start(db, job.id, "test")
    cut = feed_job.run_job(db, job.id, path, fmt=fmt)
    assert cut.state == "partial", (cut.error, cut.report)
    assert cut.state == "partial" and cut.counters.get("removed", 0) == 0
    assert any("cut short" in r for r in cut.report["reasons"])
    assert vehicle(db, dealer, RAV4)["status"] == "active"
    assert vehicle(db, dealer, F150)["status"] == "active"


def test_a_repeated_column_name_does_not_overwrite_the_first(db, dealer, tmp_path):
    """Found by review: a second, empty `SellingPrice` column nulled every price."""
    path = tmp_path / "dup.csv"
    path.write_text("VIN,Make,Model,Year,SellingPrice,Status,SellingPrice\n"
                    f"{CIVIC},Honda,Civic,2021,\"$20,000\",In Stock,\n"
                    f"{RAV4},Toyota,RAV4,2023,\"$30,000\",In Stock,\n")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "feed", "operator")
    jobs_db.start(db, job.id, "test")
    done = feed_job.run_job(db, job.id, path)
    assert done.state == "succeeded", done.report
    assert float(vehicle(db, dealer, CIVIC)["price"]) == 20000
    assert float(vehicle(db, dealer, RAV4)["price"]) == 30000
    assert done.report["duplicate_columns"] == ["SellingPrice"]
    assert "SellingPrice (2)" in done.report["unknown_columns"]


def test_an_unhealthy_run_removes_nothing(db, dealer, tmp_path):
    rows = list(make_feed.rows(40, seed=8))

    def run(rows, name):
        return run_rows(db, dealer, tmp_path / name, rows)

    assert run(rows, "a.csv").state == "succeeded"
    assert run(rows, "b.csv").state == "succeeded"  # all unchanged: still a healthy 40
    shrunk = run(rows[:4], "c.csv")  # 4 of the usual 40
    assert shrunk.verdict in ("degraded", "failed") and shrunk.state != "succeeded"
    assert shrunk.counters.get("removed", 0) == 0
    active = db.execute("SELECT count(*) AS n FROM vehicles WHERE dealership_id = %s"
                        " AND status = 'active'", (dealer.id,)).fetchone()["n"]
    assert active == 40


def test_a_json_record_gaining_a_field_reprocesses_only_itself(db, dealer, tmp_path):
    """Found by review: the row hashes were seeded by the names the first rows used, in
    the order met, so one record gaining a field re-processed every row of the feed."""
    def write(first_has_trim: bool) -> Path:
        records = []
        for i, (vin, (make, model, year)) in enumerate(CARS.items()):
            r = {"vin": vin, "make": make, "model": model}
            if i or first_has_trim:
                r["trim"] = "LX"
            records.append({**r, "year": year, "price": str(20000 + i)})
        path = tmp_path / f"feed-{first_has_trim}.json"
        path.write_text(json.dumps(records))
        return path

    def run(path):
        job, _ = jobs_db.create_or_get_active(db, dealer.id, "feed", "operator")
        jobs_db.start(db, job.id, "test")
        return feed_job.run_job(db, job.id, path)

    assert run(write(False)).counters["added"] == 5
    again = run(write(True))
    assert again.state == "succeeded"
    assert again.counters["unchanged"] == 4 and again.counters["changed"] == 1
    assert again.counters["coverage_base"] == 1  # the stages saw only the changed record


def test_coverage_is_judged_over_the_inventory_not_the_rows_that_changed(db, dealer, tmp_path):
    """Found by review (real data: Renton judged degraded on two days): when most rows
    change, the gate compared the coverage of just those rows with the usual coverage of a
    whole inventory. 6 of 20 cars have no description (70% usual); the 11 re-priced today
    are those 6 and 5 others (45%), the inventory is still at 68%."""
    rows = [list(r) for r in make_feed.rows(20, seed=11)]
    desc, price = make_feed.HEADER.index("Description"), make_feed.HEADER.index("SellingPrice")
    vin = make_feed.HEADER.index("VIN")
    for r in rows[:6]:
        r[desc] = ""
    first = run_rows(db, dealer, tmp_path / "a.csv", rows)
    assert first.state == "succeeded" and first.report["coverage"]["description"] == 0.7
    today = [list(r) for r in rows[:19]]  # the 20th car was sold
    for r in today[:11]:
        r[price] = "12345"
    second = run_rows(db, dealer, tmp_path / "b.csv", today)
    assert second.counters["unchanged"] == 8 and second.counters["changed"] == 11
    assert second.verdict == "healthy", second.report["reasons"]
    assert second.report["coverage"]["description"] == round(13 / 19, 4)
    assert second.state == "succeeded" and second.counters["removed"] == 1
    assert vehicle(db, dealer, rows[19][vin])["status"] == "removed"


def test_a_listed_vehicle_whose_row_is_rejected_is_kept_not_removed(db, dealer, tmp_path):
    rows = list(make_feed.rows(40, seed=9))
    year, vin = make_feed.HEADER.index("Year"), make_feed.HEADER.index("VIN")

    def run(rows, name):
        return run_rows(db, dealer, tmp_path / name, rows)

    assert run(rows, "a.csv").state == "succeeded"
    assert run(rows, "b.csv").state == "succeeded"
    typo = [list(r) for r in rows]
    typo[3][year] = "1921"  # a typo for 2021: the row is rejected, the car is still listed
    kept = run(typo, "c.csv")
    assert kept.state == "succeeded" and kept.counters["rejected"] == 1
    assert kept.counters.get("removed", 0) == 0
    stored = vehicle(db, dealer, rows[3][vin])
    assert stored["status"] == "active" and stored["year"] == int(rows[3][year])
    assert db.execute("SELECT count(*) AS n FROM run_seen").fetchone()["n"] == 0
    gone = run(rows[:3] + rows[4:], "d.csv")  # really gone this time
    assert gone.counters["removed"] == 1
    assert vehicle(db, dealer, rows[3][vin])["status"] == "removed"


def test_a_crawled_vehicle_whose_page_is_rejected_is_kept_not_removed(db, dealer):
    rows = [dict(zip(make_feed.HEADER, r, strict=True)) for r in make_feed.rows(10, seed=5)]
    items = [VehicleItem(source=f"https://lot.test/{r['VIN']}", vin=r["VIN"], make=r["Make"],
                         model=r["Model"], year=r["Year"], price=r["SellingPrice"])
             for r in rows]
    assert crawl(db, dealer, items)["state"] == "succeeded"
    assert crawl(db, dealer, items)["state"] == "succeeded"
    typo = items[2].model_copy(update={"year": "1923"})
    kept = crawl(db, dealer, [*items[:2], typo, *items[3:]])
    assert kept["state"] == "succeeded" and kept["counters"]["rejected"] == 1
    assert kept["removed"] == 0 and vehicle(db, dealer, rows[2]["VIN"])["status"] == "active"
    assert crawl(db, dealer, items[:2] + items[3:])["removed"] == 1


def test_an_empty_or_unreadable_feed_removes_nothing(db, dealer, run_feed, tmp_path):
    run_feed({CIVIC: (20000, "In Stock"), RAV4: (30000, "In Stock")})
    empty = run_feed({})
    assert empty.state == "failed" and empty.counters.get("removed", 0) == 0
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "feed", "operator")
    jobs_db.start(db, job.id, "test")
    junk = tmp_path / "junk.xml"
    junk.write_text("<listings><listing><vin>")
    broken = feed_job.run_job(db, job.id, junk)
    assert broken.state != "succeeded" and broken.counters.get("removed", 0) == 0
    assert db.execute("SELECT count(*) AS n FROM vehicles WHERE status = 'active'"
                      ).fetchone()["n"] == 2
    assert db.execute("SELECT count(*) AS n FROM run_seen").fetchone()["n"] == 0


def item(vin: str, price: int) -> VehicleItem:
    make, model, year = CARS[vin]
    return VehicleItem(source=f"https://lot.test/{vin}", vin=vin, make=make, model=model,
                       year=year, price=str(price))


def crawl(db, dealer, items, complete=True):
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
    jobs_db.start(db, job.id, "test")
    run = run_mod.open_run(db, dealer.id, job.id, "crawl")
    run_mod.process(run, items)
    report = run_mod.close(run, complete=complete)
    jobs_db.finish(db, job.id, report["state"], counters=report["counters"],
                   verdict=report["verdict"], report=report)
    return report


def test_crawls_follow_the_same_rules(db, dealer):
    assert crawl(db, dealer, [item(CIVIC, 20000), item(RAV4, 30000)])["removed"] == 0
    incomplete = crawl(db, dealer, [item(CIVIC, 20000)], complete=False)
    assert incomplete["state"] == "partial" and incomplete["removed"] == 0
    assert vehicle(db, dealer, RAV4)["status"] == "active"
    complete = crawl(db, dealer, [item(CIVIC, 21000), item(RAV4, 30000)])
    assert complete["state"] == "succeeded"
    gone = crawl(db, dealer, [item(CIVIC, 21000)])
    assert gone["removed"] == 1 and vehicle(db, dealer, RAV4)["status"] == "removed"
    back = crawl(db, dealer, [item(CIVIC, 21000), item(RAV4, 30000)])
    assert back["counters"]["relisted"] == 1
    history = [e["kind"] for e in reads_db.events_for(db, dealer.id, RAV4)][::-1]
    assert history == ["added", "removed", "relisted"]


def test_an_attempt_taken_over_by_another_settles_nothing(db, dealer):
    cars = [item(CIVIC, 20000), item(RAV4, 30000), item(F150, 40000)]
    crawl(db, dealer, cars)
    crawl(db, dealer, cars)
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
    jobs_db.start(db, job.id, "cli@host:1")
    first = run_mod.open_run(db, dealer.id, job.id, "crawl")
    run_mod.process(first, cars)  # every car unchanged: remembered as seen
    # taken for abandoned and claimed by a worker: attempt 2 runs beside the first
    db.execute("UPDATE jobs SET attempts = attempts + 1, worker = 'w:2' WHERE id = %s",
               (job.id,))
    second = run_mod.open_run(db, dealer.id, job.id, "crawl")
    run_mod.process(second, cars[:1])
    late = run_mod.close(first, complete=True)
    assert late["state"] == run_mod.SUPERSEDED and late["removed"] == 0
    assert jobs_db.get(db, job.id).state == "running"  # left to its current attempt
    run_mod.process(second, cars[1:])
    report = run_mod.close(second, complete=True)
    assert report["state"] == "succeeded" and report["removed"] == 0
    assert {vehicle(db, dealer, c.vin)["status"] for c in cars} == {"active"}


def test_an_attempt_taken_over_by_another_no_longer_writes_the_jobs_counters(db, dealer):
    """A live attempt taken for dead (a hung worker whose crawl child goes on) reports its
    progress into the job record beside its successor: it must not overwrite the current
    attempt's live counters, nor a finished job's (nor store its batches)."""
    cars = [item(CIVIC, 20000), item(RAV4, 30000), item(F150, 40000)]
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
    jobs_db.start(db, job.id, "w:1")
    first = run_mod.open_run(db, dealer.id, job.id, "crawl")
    run_mod.process(first, cars[:1])
    db.execute("UPDATE jobs SET attempts = attempts + 1, worker = 'w:2' WHERE id = %s",
               (job.id,))
    second = run_mod.open_run(db, dealer.id, job.id, "crawl")
    run_mod.process(second, cars)
    run_mod.report_progress(second, phase="crawling", force=True)
    with pytest.raises(TakenOver):  # nor store its batch (test_fenced_batches.py)
        run_mod.process(first, cars[1:2])
    run_mod.report_progress(first, phase="crawling", force=True)  # 2 items
    assert jobs_db.get(db, job.id).counters["items"] == 3  # the second attempt's
    report = run_mod.close(second, complete=True)
    jobs_db.finish(db, job.id, report["state"], counters=report["counters"],
                   verdict=report["verdict"], report=report)
    run_mod.report_progress(first, phase="settling", force=True)  # the first one, late
    done = jobs_db.get(db, job.id)
    assert (done.state, done.phase, done.counters) == ("succeeded", "done", report["counters"])


def test_days_on_lot(db, dealer, run_feed):
    run_feed({CIVIC: (20000, "In Stock"), RAV4: (30000, "In Stock")})
    run_feed({CIVIC: (20000, "In Stock")})
    db.execute("UPDATE vehicles SET first_seen = first_seen - interval '10 days',"
               " removed_at = removed_at - interval '3 days' WHERE dealership_id = %s",
               (dealer.id,))
    rows = {r["vin"]: r for r in reads_db.list_for(db, dealer.id, status=None)}
    assert rows[CIVIC]["days_on_lot"] == 10  # still listed: until today
    assert rows[RAV4]["days_on_lot"] == 7  # removed 3 days ago, listed 10 days ago


def test_skipped_unchanged_rows_are_seen_and_only_the_missing_one_is_removed(db, dealer,
                                                                              run_feed):
    run_feed({CIVIC: (20000, "In Stock"), RAV4: (30000, "In Stock"),
              F150: (40000, "In Stock"), EQUINOX: (25000, "In Stock")})
    again = run_feed({CIVIC: (20000, "In Stock"), RAV4: (30000, "In Stock"),
                      F150: (41000, "In Stock")})
    assert again.counters["unchanged"] == 2 and again.counters["removed"] == 1
    assert kinds(db, again) == [("price_changed", F150), ("removed", EQUINOX)]
    status = {vin: vehicle(db, dealer, vin)["status"] for vin in (CIVIC, RAV4, F150, EQUINOX)}
    assert status == {CIVIC: "active", RAV4: "active", F150: "active", EQUINOX: "removed"}
    assert db.execute("SELECT count(*) AS n FROM run_seen").fetchone()["n"] == 0


def test_a_feed_after_a_crawl_removes_crawled_vehicles_it_does_not_carry(db, dealer, run_feed):
    crawl(db, dealer, [item(CIVIC, 20000), item(JETTA, 18000)])
    run_feed({CIVIC: (20000, "In Stock"), RAV4: (30000, "In Stock")})
    # the crawl's vehicles have no source-row hash: never taken as seen by the fast path
    third = run_feed({CIVIC: (20000, "In Stock"), RAV4: (30000, "In Stock")})
    assert third.counters["unchanged"] == 2
    assert vehicle(db, dealer, JETTA)["status"] == "removed"
    assert vehicle(db, dealer, CIVIC)["status"] == "active"
