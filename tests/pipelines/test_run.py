"""One run over batches, straight through the stages into a real PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest

from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from crawler.models import VehicleItem
from pipelines import dedup, store
from pipelines import run as run_mod
from pipelines.store import content_hash

CIVIC = "19XFC2F7XME104512"
RAV4 = "2T3P1RFV7PC338201"


def item(vin, **kw):
    base = dict(source=f"https://d.test/{vin}", vin=vin, year="2021", make="Honda",
                model="Civic", price="$20,000")
    return VehicleItem(**{**base, **kw})


@pytest.fixture
def job(db):
    dealer = dealers_db.create(db, slug="d1", name="D1", website_url="https://d.test/")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "feed", "operator")
    jobs_db.start(db, job.id, "test")
    return job


def test_same_vin_twice_in_a_run_is_merged_not_stored_twice(db, job):
    run = run_mod.open_run(db, job.dealership_id, job.id, "feed")
    run_mod.process(run, [item(CIVIC, trim=None), item(CIVIC, trim="EX", exterior_color="Red")])
    run_mod.process(run, [item(CIVIC, image_urls=["https://d.test/1.jpg"])])
    rows = db.execute("SELECT * FROM vehicles").fetchall()
    assert len(rows) == 1
    assert rows[0]["trim"] == "EX" and rows[0]["exterior_color"] == "Red"
    assert rows[0]["image_urls"] == ["https://d.test/1.jpg"]
    assert run.counters["duplicates"] == 2
    kinds = [r["kind"] for r in db.execute("SELECT kind FROM vehicle_events")]
    assert kinds == ["added"]  # merging later sightings is not a price change or re-add


def test_vins_only_memory_drops_later_duplicates():
    seen = dedup.VinsOnly()
    from pipelines.normalize import normalize

    first, _ = dedup.batch([normalize(item(CIVIC))], seen)
    again, dups = dedup.batch([normalize(item(CIVIC, trim="EX"))], seen)
    assert len(first) == 1 and again == [] and dups == 1 and seen[CIVIC] is None


def test_vins_only_memory_tells_every_vin_apart():
    seen = dedup.VinsOnly()
    vins = [CIVIC, CIVIC[:-1] + "0", "0" * 17, "Z" * 17, "2" + CIVIC[1:], "SHORT", "",
            "WVWZZZ1JZXW000001-EXTRA", "ÀBCDEFGHJKLMNPRST", "1_000_000_000_000"]
    for vin in vins[:5]:
        seen[vin] = None
    assert all(v in seen for v in vins[:5]) and len(seen) == 5
    assert not any(v in seen for v in vins[5:])
    for vin in vins[5:]:  # not VIN-shaped: kept as text, still told apart
        seen[vin] = None
    assert all(v in seen for v in vins) and len(seen) == len(vins)
    with pytest.raises(KeyError):
        seen["2HGFC2F59JH000001"]


def test_a_failing_batch_commits_nothing(db, job):
    run = run_mod.open_run(db, job.dealership_id, job.id, "feed")
    good = item(RAV4, make="Toyota", model="RAV4")
    db.execute("ALTER TABLE vehicles ADD CONSTRAINT no_red CHECK (exterior_color <> 'Red')")
    try:
        with pytest.raises(psycopg.errors.CheckViolation):
            run_mod.process(run, [good, item(CIVIC, exterior_color="Red")])
    finally:
        db.execute("ALTER TABLE vehicles DROP CONSTRAINT no_red")
    assert db.execute("SELECT count(*) AS n FROM vehicles").fetchone()["n"] == 0
    assert db.execute("SELECT count(*) AS n FROM vehicle_events").fetchone()["n"] == 0


def test_unhealthy_run_removes_nothing_and_healthy_run_removes_the_unseen(db, job):
    run = run_mod.open_run(db, job.dealership_id, job.id, "feed")
    run_mod.process(run, [item(CIVIC), item(RAV4, make="Toyota", model="RAV4")])
    report = run_mod.close(run, complete=True)
    assert report["verdict"] == "healthy" and report["removed"] == 0
    jobs_db.finish(db, job.id, report["state"], counters=report["counters"], verdict="healthy")
    # an incomplete run that saw only one of the two removes nothing
    job2, _ = jobs_db.create_or_get_active(db, job.dealership_id, "feed", "operator")
    run = run_mod.open_run(db, job.dealership_id, job2.id, "feed")
    run_mod.process(run, [item(CIVIC)])
    report = run_mod.close(run, complete=False)
    assert report["may_remove"] is False and report["removed"] == 0
    assert report["state"] == "partial"
    jobs_db.finish(db, job2.id, report["state"], counters=report["counters"])
    # a complete healthy run removes the one it did not see
    job3, _ = jobs_db.create_or_get_active(db, job.dealership_id, "feed", "operator")
    run = run_mod.open_run(db, job.dealership_id, job3.id, "feed")
    run_mod.process(run, [item(RAV4, make="Toyota", model="RAV4")])
    report = run_mod.close(run, complete=True)
    assert report["removed"] == 1 and report["state"] == "succeeded", report
    status = {r["vin"]: r["status"] for r in db.execute("SELECT vin, status FROM vehicles")}
    assert status == {CIVIC: "removed", RAV4: "active"}
    assert db.execute("SELECT count(*) AS n FROM run_seen").fetchone()["n"] == 0


def test_content_hash_ignores_where_the_vehicle_was_seen():
    from pipelines.normalize import normalize

    a = normalize(item(CIVIC, source="https://d.test/a"))
    b = normalize(item(CIVIC, source="https://d.test/b"))
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash(normalize(item(CIVIC, price="$19,999")))


def test_a_fresh_dealers_batch_is_copied_in_with_its_added_events(db, job):
    run = run_mod.open_run(db, job.dealership_id, job.id, "feed")
    assert run.fresh
    run_mod.process(run, [item(CIVIC, availability="In Stock"),
                          item(RAV4, make="Toyota", model="RAV4", price="31000")])
    assert run.counters["added"] == 2
    events = {e["vin"]: e for e in db.execute("SELECT * FROM vehicle_events")}
    assert events[CIVIC]["kind"] == "added"
    assert events[CIVIC]["new_value"] == {"price": 20000.0, "availability": "In Stock"}
    assert events[RAV4]["new_value"] == {"price": 31000.0, "availability": None}
    stored = db.execute("SELECT last_job_id, content_hash FROM vehicles").fetchall()
    assert all(r["last_job_id"] == job.id and r["content_hash"] for r in stored)
    assert not run_mod.open_run(db, job.dealership_id, job.id, "feed").fresh


def test_a_plain_copy_that_meets_a_stored_vin_writes_nothing_and_declines(db, job):
    from crawler.db import vehicles as vehicles_db
    from pipelines.normalize import normalize

    civic = normalize(item(CIVIC))
    assert vehicles_db.insert_new(db, job.dealership_id, job.id, store.prepare([civic]),
                                 [civic])
    rav4 = normalize(item(RAV4, make="Toyota", model="RAV4"))
    declined = vehicles_db.insert_new(db, job.dealership_id, job.id,
                                      store.prepare([rav4, civic]), [rav4, civic])
    assert declined is None
    vins = [r["vin"] for r in db.execute("SELECT vin FROM vehicles")]
    assert vins == [CIVIC]  # the batch's RAV4 went nowhere: the caller upserts it instead


def test_overlapped_writes_score_a_batch_against_the_one_still_being_written(db, job):
    import threading

    from pipelines import quality
    from pipelines.normalize import normalize

    run = run_mod.open_run(db, job.dealership_id, job.id, "feed", vins_only=True,
                           overlap_writes=True)
    writer_conn = run.writer_conn
    hold = threading.Event()
    run.writer.submit(hold.wait)  # the writer is busy: the first batch waits behind this
    run_mod.process(run, [item(CIVIC, image_urls=["https://d.test/shared.jpg"])])
    assert not run.pending.done()
    assert db.execute("SELECT count(*) AS n FROM vehicles").fetchone()["n"] == 0
    rav4 = item(RAV4, make="Toyota", model="RAV4", image_urls=["https://d.test/shared.jpg"])
    ctx = quality.context_for(run.conn, job.dealership_id, [normalize(rav4)], run.quality)
    assert ctx.photo_users["https://d.test/shared.jpg"] == {CIVIC, RAV4}  # from memory
    hold.set()
    run_mod.process(run, [rav4])
    report = run_mod.close(run, complete=True)
    assert report["counters"]["added"] == 2 and run.writer is None and writer_conn.closed
    flags = {r["vin"]: r["quality_flags"] for r in db.execute("SELECT * FROM vehicles")}
    assert "photo_reused" in flags[RAV4] and "photo_reused" not in flags[CIVIC]


def test_an_overlapped_write_that_fails_is_raised_and_commits_nothing(db, job):
    run = run_mod.open_run(db, job.dealership_id, job.id, "feed", overlap_writes=True)
    db.execute("ALTER TABLE vehicles ADD CONSTRAINT no_red CHECK (exterior_color <> 'Red')")
    try:
        run_mod.process(run, [item(RAV4, make="Toyota", model="RAV4"),
                              item(CIVIC, exterior_color="Red")])
        with pytest.raises(psycopg.errors.CheckViolation):
            run_mod.wait_for_writes(run)
    finally:
        run_mod.abandon(run)
        db.execute("ALTER TABLE vehicles DROP CONSTRAINT no_red")
    assert run.writer is None and run.writer_conn is None
    assert db.execute("SELECT count(*) AS n FROM vehicles").fetchone()["n"] == 0
    assert db.execute("SELECT count(*) AS n FROM vehicle_events").fetchone()["n"] == 0


def test_market_medians_are_read_for_the_models_a_run_meets(db, job):
    market = dealers_db.create(db, slug="market", name="Market")
    mjob, _ = jobs_db.create_or_get_active(db, market.id, "feed", "operator")
    jobs_db.start(db, mjob.id, "test")
    civics = ["1HGCM82633A004352", "1HGCM82633A004353", "1HGCM82633A004354"]
    run = run_mod.open_run(db, market.id, mjob.id, "feed")
    run_mod.process(run, [item(v, price="$20,000") for v in civics])
    run_mod.close(run, complete=True)

    run = run_mod.open_run(db, job.dealership_id, job.id, "feed")
    assert run.quality.price_medians == {}  # nothing is read before a batch needs it
    run_mod.process(run, [item(CIVIC, price="$60,000"),
                          item(RAV4, make="Toyota", model="RAV4", price="$60,000")])
    assert run.quality.price_medians == {("honda", "civic", 2021, "USD"): (Decimal("20000"), 3)}
    flags = {r["vin"]: r["quality_flags"] for r in db.execute(
        "SELECT vin, quality_flags FROM vehicles WHERE dealership_id = %s",
        (job.dealership_id,))}
    assert "price_outlier" in flags[CIVIC] and "price_outlier" not in flags[RAV4]


def test_a_market_median_is_of_a_bounded_sample_of_listings(db, job):
    from crawler.db import quality as quality_db

    run = run_mod.open_run(db, job.dealership_id, job.id, "feed")
    # nine 2021 Civics priced 10,000 ... 18,000 (VINs need not decode for this)
    run_mod.process(run, [item(f"19XFC2F5{i}ME10451{i}", price=f"${10_000 + 1_000 * i}")
                          for i in range(9)])
    key = ("honda", "civic", 2021, "USD")
    assert quality_db.price_medians_for(db, [key]) == {key: (Decimal("14000"), 9)}
    assert quality_db.price_medians_for(db, [key[:3] + ("EUR",)]) == {}  # another market
    median, n = quality_db.price_medians_for(db, [key], max_sample=5)[key]
    assert n == 5 and Decimal("12000") <= median <= Decimal("16000")
    assert quality_db.price_medians_for(db, [key], min_sample=3, max_sample=2) == {}


def test_a_vin_key_gives_its_vin_back():
    for vin in (CIVIC, RAV4, "00000000000000001", "ZZZZZZZZZZZZZZZZZ", "short-vin"):
        assert dedup.vin_of_key(dedup.vin_key(vin)) == vin
    seen = dedup.VinsOnly()
    seen.add(CIVIC)
    assert seen.holds_key(dedup.vin_key(CIVIC)) and not seen.holds_key(dedup.vin_key(RAV4))


@pytest.mark.parametrize("vins", [
    [CIVIC, RAV4], [CIVIC, "short"], [CIVIC, "19XFC2F7XME10451-"], [CIVIC, "19XFC2F7XME10451١"],
    [CIVIC, "19xfc2f7xme104512"], [], ["0" * 17, "0" * 16 + "1"]])
def test_vin_keys_in_bulk_are_the_keys_one_by_one(vins):
    assert dedup.vin_keys(vins) == [dedup.vin_key(v) for v in vins]


# Values COPY's text format must escape, or that look like its markers, in every kind of
# column the store writes.
AWKWARD = ["back\\slash", "tab\there", "line\nbreak", "carriage\rreturn", "\\N", "N",
           'quote"d', "{braces}", "comma, separated", "", " ", "NULL", "ünïcödé ✓", "\\",
           "trailing\\"]


@pytest.mark.parametrize("fresh", [True, False], ids=["plain COPY", "upsert"])
def test_every_value_is_written_back_exactly_whatever_its_characters(db, job, fresh):
    from crawler.db import vehicles as vehicles_db
    from crawler.models import Vehicle

    vehicles = [
        Vehicle(vin=f"1HGCM82633A00{i:04d}", source=f"row {i}\t{text}", stock_number=text,
                trim=text, description=f"{text} in a longer {text} text", url=text or None,
                make="Honda", model=text, year=2003, mileage=i * 1000,
                price=Decimal("19999.99") if i % 2 else None, msrp=Decimal("1E+4"),
                image_urls=[f"https://x.test/{text}.jpg", text, "https://x.test/2.jpg"],
                vin_decoded={"make": text, "years": [2003], "nested": {text: None}},
                vin_placeholder=bool(i % 3), quality_score=i, quality_flags=[text, "no_trim"],
                source_hash=text or None, rules_version=3)
        for i, text in enumerate(AWKWARD)]
    vehicles.append(Vehicle(vin="1HGCM82633A009999", source="bare"))  # every NULL and {}
    if not fresh:  # the upsert path: the dealer has a vehicle already
        vehicles_db.insert_new(db, job.dealership_id, job.id, store.prepare(vehicles[:1]),
                               vehicles[:1])
    counts = store.write(db, job.dealership_id, job.id, store.prepare(vehicles), vehicles,
                         [], fresh=fresh)
    assert counts["total" if not fresh else "added"] == len(vehicles)
    stored = {r["vin"]: r for r in db.execute("SELECT * FROM vehicles")}
    for v in vehicles:
        row = stored[v.vin]
        assert {f: row[f] for f in Vehicle.model_fields} == v.model_dump(), v.vin
        assert row["content_hash"] == content_hash(v)


def test_array_parameters_reach_the_server_exactly(db):
    from crawler.db.copy_text import array_literal

    for values in (AWKWARD, [None, *AWKWARD, None], [], [None]):
        assert db.execute("SELECT %s::text[] AS a", (array_literal(values),)
                          ).fetchone()["a"] == values


def test_added_events_carry_each_new_vehicles_price_and_availability(db, job):
    from crawler.db import vehicles as vehicles_db
    from crawler.models import Vehicle

    vehicles = [Vehicle(vin=f"1HGCM82633A00{i:04d}", source="s", make="Honda",
                        price=Decimal("19999.99") if i % 2 else None,
                        availability=text or None)
                for i, text in enumerate(AWKWARD)]
    vehicles_db.insert_new(db, job.dealership_id, job.id, store.prepare(vehicles), vehicles)
    events = {r["vin"]: r["new_value"] for r in db.execute(
        "SELECT vin, new_value FROM vehicle_events WHERE kind = 'added'")}
    assert events == {v.vin: {"price": None if v.price is None else float(v.price),
                              "availability": v.availability} for v in vehicles}


def test_a_content_hash_tells_apart_what_copy_text_would_not():
    from crawler.models import Vehicle

    base = dict(vin=CIVIC, source="s", make="Honda")
    hashes = {content_hash(Vehicle(**base, trim=t)) for t in
              (None, "", "\\N", "N", "a\tb", "a\\tb", "a b")}
    assert len(hashes) == 7
    assert content_hash(Vehicle(**base, image_urls=["a,b"])) != content_hash(
        Vehicle(**base, image_urls=["a", "b"]))
    assert content_hash(Vehicle(**base, quality_score=1)) != content_hash(Vehicle(**base))
