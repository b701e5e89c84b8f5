"""Feeds end to end into a real PostgreSQL: every format, rejects, the unchanged-row fast
path, HTTP fetching with retries and conditional requests, and the CLI."""

from __future__ import annotations

import csv
import gzip
import json
import sys
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from crawler.config import PROJECT_ROOT, reset_settings
from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from crawler.db import rejects as rejects_db
from ingest import feed, feed_job

sys.path.insert(0, str(PROJECT_ROOT / "fixtures" / "tools"))
import make_feed  # noqa: E402

pytestmark = pytest.mark.integration
FEEDS = PROJECT_ROOT / "fixtures" / "feeds"


def dealer(db, slug="d1", **fields):
    return dealers_db.create(db, slug=slug, name=slug.upper(), **fields)


def ingest(db, d, source=None, **kw):
    job, created = jobs_db.create_or_get_active(db, d.id, "feed", "operator")
    assert created
    jobs_db.start(db, job.id, "test")
    return feed_job.run_job(db, job.id, source, **kw)


def snapshot(db, d):
    """Per VIN: (updated_at, xmin, source_hash): xmin changes on any write of the row."""
    return {r["vin"]: (r["updated_at"], r["xmin"], r["source_hash"]) for r in db.execute(
        "SELECT vin, updated_at, xmin::text AS xmin, source_hash FROM vehicles"
        " WHERE dealership_id = %s", (d.id,))}


def events(db, d, kind=None):
    return db.execute("SELECT * FROM vehicle_events WHERE dealership_id = %s"
                      " AND (%s::text IS NULL OR kind = %s) ORDER BY id",
                      (d.id, kind, kind)).fetchall()


@pytest.mark.parametrize("name, added, rejected", [
    ("harbor-city-auto.csv", 6, 1),
    ("google-vehicle-listings.xml", 3, 0),
    ("google-vehicle-ads.tsv", 2, 0),
    ("meta-automotive-catalog.xml", 2, 0),
    ("meta-automotive-catalog.csv", 2, 0),
    ("aggregator.jsonl", 2, 2),
])
def test_every_format_is_stored(db, name, added, rejected):
    d = dealer(db)
    job = ingest(db, d, FEEDS / name)
    assert job.counters["added"] == added and job.counters["rejected"] == rejected
    assert job.state in ("succeeded", "partial") and job.report["feed"]["format"]
    stored = db.execute("SELECT count(*) AS n, count(source_hash) AS h FROM vehicles"
                        " WHERE dealership_id = %s", (d.id,)).fetchone()
    assert stored["n"] == added and stored["h"] == added  # store writes the row hash


def test_rejects_keep_row_number_reasons_and_raw_row(db):
    d = dealer(db)
    ingest(db, d, FEEDS / "aggregator.jsonl")
    rejects = {r["source"]: r for r in rejects_db.list_for(db, d.id)}
    assert set(rejects) == {"row 3", "row 4"}
    assert "not JSON" in rejects["row 3"]["reasons"][0]
    assert rejects["row 3"]["payload"]["raw"].startswith('{"vin": "JN8BT3BB7NW300112"')
    assert any("17 letters" in r for r in rejects["row 4"]["reasons"])
    assert rejects["row 4"]["payload"]["raw"]["vin"] == "NOTAVIN"


def test_unknown_columns_are_reported(db):
    d = dealer(db)
    job = ingest(db, d, FEEDS / "google-vehicle-listings.xml")
    assert job.counters["unknown_columns"] == 1
    assert job.report["unknown_columns"] == ["vehicle_fulfillment"]
    assert job.report["feed"]["mapping"] == "google"


def test_dealer_mapping_and_format_are_used(db, tmp_path):
    import tomllib

    spec = tomllib.loads((FEEDS / "dealer-custom.mapping.toml").read_text())
    renamed = tmp_path / "export.dat"
    renamed.write_bytes((FEEDS / "dealer-custom.csv").read_bytes())
    d = dealer(db, feed_url=str(renamed), feed_format="csv", feed_mapping=spec)
    job = ingest(db, d)
    assert job.counters["added"] == 2 and job.report["feed"]["mapping"] == "custom"


def write_csv(path: Path, rows: list[list[str]], header=make_feed.HEADER):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_unchanged_rows_cost_no_write_and_changed_ones_are_written(db, tmp_path):
    d = dealer(db)
    rows = list(make_feed.rows(120, seed=3))
    first = ingest(db, d, write_csv(tmp_path / "a.csv", rows))
    assert first.counters["added"] == 120
    before, n_events = snapshot(db, d), len(events(db, d))

    again = ingest(db, d, write_csv(tmp_path / "b.csv", rows))
    assert again.state == "succeeded"
    assert again.counters["unchanged"] == 120
    assert again.counters.get("added", 0) == again.counters.get("changed", 0) == 0
    assert again.counters.get("upserted", 0) == 0
    assert snapshot(db, d) == before  # not one vehicle row written (xmin unchanged)
    assert len(events(db, d)) == n_events

    for r in rows[:3]:
        r[14] = "$1,234,567"  # SellingPrice
    third = ingest(db, d, write_csv(tmp_path / "c.csv", rows))
    assert third.counters["changed"] == 3 and third.counters["unchanged"] == 117
    after = snapshot(db, d)
    changed = {v for v in after if after[v] != before[v]}
    assert changed == {r[16] for r in rows[:3]}
    priced = events(db, d, "price_changed")
    assert {e["vin"] for e in priced} == changed
    assert all(e["new_value"] == {"price": 1234567.0} for e in priced)


def _hand_rolled_csv(path: Path, rows: list[list[str]]) -> Path:
    """CSV as hand-rolled exporters write it: CRLF, a field quoted only when it holds the
    delimiter or a line break, a quote in an unquoted field left as it is."""
    def field(v: str) -> str:
        return '"' + v.replace('"', '""') + '"' if ("," in v or "\n" in v) else v
    path.write_text("".join(",".join(map(field, r)) + "\r\n"
                            for r in [make_feed.HEADER, *rows]), newline="")
    return path


def test_unchanged_csv_records_are_skipped_before_parsing_and_the_rest_read_exactly(
        db, tmp_path, monkeypatch):
    rows = list(make_feed.rows(60, seed=6))
    for r in rows[:10]:
        r[18] = f"{r[18]}\nSecond line of the description."  # a record over two lines
    for r in rows[10:15]:
        r[5] = f'{r[5]} 20" wheels'  # a literal quote in an unquoted field
    parsed: list[int] = []  # rows the reader handed over parsed (not skipped as unchanged)
    real_read = feed.readers.read

    def spy(*args, **kwargs):
        for number, row in real_read(*args, **kwargs):
            if row is not None:
                parsed.append(number)
            yield number, row
    monkeypatch.setattr(feed.readers, "read", spy)
    monkeypatch.setenv("FORECOURT_FEED_BATCH_SIZE", "7")  # the reader skips from row 8 on
    reset_settings()
    d = dealer(db)
    try:
        first = ingest(db, d, _hand_rolled_csv(tmp_path / "a.csv", rows))
        assert first.counters["added"] == 60
        trims = {v: r["trim"] for v, r in stored(db, d).items()}
        assert all(trims[r[16]] == r[5] for r in rows[10:15])  # 'Sport 20" wheels'
        assert all(r["description"].endswith(" Second line of the description.")
                   for v, r in stored(db, d).items() if v in {x[16] for x in rows[:10]})
        before = snapshot(db, d)

        parsed.clear()
        again = ingest(db, d, _hand_rolled_csv(tmp_path / "b.csv", rows))
        assert again.counters["unchanged"] == 60 and snapshot(db, d) == before
        # parsed: the first batch (read before the mapping is known) and the records over
        # two lines (a first line alone is no record); both were then known by their text
        assert parsed == list(range(1, 11))

        for r in (rows[2], rows[12], rows[40]):  # two lines, literal quote, plain
            r[14] = "$99,999"
        gone = rows.pop(50)
        rows.append([*rows[30][:16], rows[30][16], *rows[30][17:]])  # the same car twice
        rows[-1][0] = "DUP-STOCK"
        parsed.clear()
        third = ingest(db, d, _hand_rolled_csv(tmp_path / "c.csv", rows))
    finally:
        monkeypatch.undo()
        reset_settings()
    assert third.state == "succeeded"
    c = third.counters
    assert (c["changed"], c["unchanged"], c["removed"], c["duplicates"]) == (3, 56, 1, 1)
    assert {e["vin"] for e in events(db, d, "price_changed")} == {
        rows[2][16], rows[12][16], rows[40][16]}
    assert [e["vin"] for e in events(db, d, "removed")] == [gone[16]]
    # parsed: as before, the two changed one-line records and the duplicate
    assert parsed == [*range(1, 11), 13, 41, 60]


def test_a_row_that_changes_only_in_unmapped_columns_refreshes_its_hash_silently(db, tmp_path):
    d = dealer(db)
    header = [*make_feed.HEADER, "Lot"]
    rows = [[*r, "north"] for r in make_feed.rows(20, seed=4)]
    ingest(db, d, write_csv(tmp_path / "a.csv", rows, header))
    before = snapshot(db, d)
    rows[0][-1] = "south"
    second = ingest(db, d, write_csv(tmp_path / "b.csv", rows, header))
    assert second.counters["unchanged"] == 20 and second.counters.get("changed", 0) == 0
    after = snapshot(db, d)
    vin = rows[0][16]
    assert after[vin][0] == before[vin][0] and after[vin][2] != before[vin][2]
    assert len(events(db, d)) == 20  # only the 20 'added'
    third = ingest(db, d, write_csv(tmp_path / "c.csv", rows, header))
    assert third.counters["unchanged"] == 20 and snapshot(db, d) == after


def test_compressed_feed_is_ingested(db, tmp_path):
    d = dealer(db)
    gz = tmp_path / "inventory.xml.gz"
    gz.write_bytes(gzip.compress((FEEDS / "google-vehicle-listings.xml").read_bytes()))
    assert ingest(db, d, gz).counters["added"] == 3


# -- HTTP --------------------------------------------------------------------------------------

class FeedServer:
    """A feed URL on 127.0.0.1 that can fail a few times, then serves with an ETag (304 to a
    request naming it). `body` and `etag` may be changed between requests (etag None: no
    ETag, so only the body hash can tell the feed is unchanged)."""

    def __init__(self, body: bytes, fail: int = 0, status: int = 500,
                 etag: str | None = '"v1"'):
        self.body, self.fail, self.status, self.requests = body, fail, status, []
        self.etag = etag
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(dict(self.headers))
                if server.fail > 0:
                    server.fail -= 1
                    self.send_response(server.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if server.etag and self.headers.get("If-None-Match") == server.etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                if server.etag:
                    self.send_header("ETag", server.etag)
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/feeds/inventory"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setenv("FORECOURT_FEED_FETCH_BACKOFF_S", "0.01")
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


def test_feed_over_http_is_retried_then_not_reprocessed_when_unchanged(db, fast_retries):
    server = FeedServer((FEEDS / "harbor-city-auto.csv").read_bytes(), fail=2)
    try:
        d = dealer(db, feed_url=server.url)
        job = ingest(db, d)
        assert job.state == "succeeded" and job.counters["added"] == 6
        assert job.counters["fetch_attempts"] == 3 and len(server.requests) == 3
        second = ingest(db, d)
        assert second.state == "succeeded" and second.report["note"].startswith(
            "feed unchanged")
        assert second.report["removed"] == 0 and second.verdict is None
        assert server.requests[-1].get("If-None-Match") == '"v1"'
        active = db.execute("SELECT count(*) AS n FROM vehicles WHERE dealership_id = %s"
                            " AND status = 'active'", (d.id,)).fetchone()["n"]
        assert active == 6
        from crawler.config import get_settings

        assert not list((get_settings().data_dir / "feeds").glob("feed-*"))  # temp removed
    finally:
        server.close()


def test_feed_that_keeps_failing_fails_the_job_transiently(db, fast_retries):
    server = FeedServer(b"", fail=10)
    try:
        job = ingest(db, dealer(db), server.url)
        assert job.state == "failed" and job.error_kind == "Transient"
        assert len(server.requests) == 4  # feed_fetch_attempts
    finally:
        server.close()


def test_feed_gone_fails_at_once(db, fast_retries):
    server = FeedServer(b"", fail=10, status=404)
    try:
        job = ingest(db, dealer(db), server.url)
        assert job.state == "failed" and job.error_kind == "Permanent"
        assert len(server.requests) == 1 and "404" in job.error
    finally:
        server.close()


# -- CLI ---------------------------------------------------------------------------------------

def forecourt(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI in this process (a subprocess costs seconds of imports)."""
    from crawler.cli import main

    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_ingest_with_mapping_then_history(db, capsys):
    dealer(db, "custom-motors")
    code, out, err = forecourt(capsys, "ingest", "custom-motors",
                               str(FEEDS / "dealer-custom.csv"),
                               "--mapping", str(FEEDS / "dealer-custom.mapping.toml"))
    assert code == 0, err
    assert "rows/s" in out and "Lot Location" in out
    added = next(line for line in out.splitlines() if line.strip("│ ").startswith("added"))
    assert "2" in added
    code, out, err = forecourt(capsys, "history", "custom-motors", "--vin", "19xfc2f7xme104512")
    assert code == 0, err
    assert "added" in out and "19XFC2F7XME104512" in out and "2T3P1RFV7PC338201" not in out
    assert "price 24,995," in out  # as money, not as JSON's float (24995.0)
    code, out, err = forecourt(capsys, "ingest", "custom-motors", "/no/such/feed.csv")
    assert code != 0 and err.startswith("error: no feed file")


STORED = ("vin", "stock_number", "condition", "year", "make", "model", "trim", "body_style",
          "exterior_color", "interior_color", "transmission", "drivetrain", "mileage", "price",
          "msrp", "image_urls", "description", "vin_decoded", "vin_placeholder",
          "quality_flags", "source", "source_hash")
# The two dealers list the same cars: these flags (and so scores) depend on the other one.
MARKET_FLAGS = {"cross_dealer_duplicate", "price_outlier"}


def stored(db, d):
    out = {}
    for r in db.execute(f"SELECT {', '.join(STORED)} FROM vehicles WHERE dealership_id = %s",
                        (d.id,)):
        r["quality_flags"] = sorted(set(r["quality_flags"]) - MARKET_FLAGS)
        out[r["vin"]] = r
    return out


def test_stage_worker_processes_store_exactly_what_the_parent_would(db, tmp_path, monkeypatch):
    rows = list(make_feed.rows(260, seed=5))
    rows[100][16] = rows[3][16]  # a duplicate VIN: first met by the parent, then by a worker
    rows[150][16] = ""  # a reject (no VIN) in a worker's chunk
    rows[200][18] = 'Two lines,\r\nand a "quoted" word'  # a worker parses its text again
    path = write_csv(tmp_path / "feed.csv", rows)
    monkeypatch.setenv("FORECOURT_FEED_BATCH_SIZE", "40")
    monkeypatch.setenv("FORECOURT_FEED_STAGE_PROCESSES", "0")
    reset_settings()
    alone = ingest(db, dealer(db, "alone"), path)
    monkeypatch.setenv("FORECOURT_FEED_STAGE_PROCESSES", "1")
    monkeypatch.setenv("FORECOURT_FEED_STAGE_MIN_ROWS", "80")  # two chunks first, then workers
    reset_settings()
    try:
        pooled = ingest(db, dealer(db, "pooled"), path)
    finally:
        monkeypatch.undo()
        reset_settings()
    assert alone.state == pooled.state == "succeeded"
    for key in ("items", "valid", "added", "rejected", "duplicates"):
        assert alone.counters[key] == pooled.counters[key], key
    assert pooled.counters["added"] == 258 and pooled.counters["rejected"] == 1
    assert alone.report["feed"]["rows_staged_in_workers"] == 0
    assert pooled.report["feed"]["rows_staged_in_workers"] == 260 - 80
    assert stored(db, dealers_db.get(db, "alone")) == stored(db, dealers_db.get(db, "pooled"))
    reasons = [r["reasons"] for r in rejects_db.list_for(db, pooled.dealership_id)]
    assert reasons == [["missing VIN"]]


def test_vehicles_rebuilt_from_worker_values_equal_the_originals():
    from crawler.models import Vehicle
    from ingest.workers import vehicle_from_values

    v = Vehicle(vin="1HGCM82633A004352", source="row 1", make="Honda", price="1000.00",
                image_urls=["https://x.test/1.jpg"], vin_decoded={"make": "Honda"})
    again = vehicle_from_values(tuple(v.__dict__.values()))
    assert again == v and again.model_dump() == v.model_dump()
    assert again.model_copy(update={"trim": "EX"}).trim == "EX"


def table_stats(db, table):
    return db.execute("SELECT reltuples::bigint AS n FROM pg_class WHERE oid = %s::regclass",
                      (table,)).fetchone()["n"]


def test_a_bulk_load_leaves_the_planner_statistics_of_what_it_wrote(db, tmp_path):
    # The CI server runs with autovacuum off: without forecourt's own ANALYZE the planner
    # saw an empty vehicles table after a bulk load and chose plans that read every active
    # vehicle once per VIN of each later batch.
    from crawler.db import vehicles as vehicles_db

    assert table_stats(db, "vehicles") <= 0  # emptied by TRUNCATE: no statistics yet
    path = make_feed.write(tmp_path / "feed.csv", 6_000, seed=8)
    job = ingest(db, dealer(db), path)
    assert job.state == "succeeded" and job.counters["added"] == 6_000
    assert table_stats(db, "vehicles") == 6_000
    assert table_stats(db, "vehicle_events") == 6_000  # one 'added' event each
    assert vehicles_db.refresh_statistics(db) == []  # nothing changed since
    # analyzed again once as many rows changed as the larger of 5,000 and half the table
    assert vehicles_db.refresh_statistics(db, written=4_999) == []
    assert vehicles_db.refresh_statistics(db, written=5_000) == ["vehicle_events", "vehicles"]


# Columns a re-ingest rewrites on a re-priced vehicle. While no index holds one of them (as
# a key, an INCLUDE column, in an expression or in a predicate), PostgreSQL updates the row
# in place (a HOT update: no index entries, one heap page) instead of inserting into every
# index of vehicles; migration 0006.
REWRITTEN = ("price", "msrp", "source_hash", "content_hash", "quality_score",
             "quality_flags", "updated_at", "last_seen", "last_job_id", "vin_decoded",
             "availability", "mileage", "description")


def test_no_index_holds_a_column_a_re_ingest_rewrites(db):
    import re

    defs = [r["d"] for r in db.execute(
        "SELECT pg_get_indexdef(indexrelid) AS d FROM pg_index"
        " WHERE indrelid = 'vehicles'::regclass")]
    assert len(defs) >= 6
    for d in defs:
        used = {c for c in REWRITTEN if re.search(rf"\b{c}\b", d.split(" USING ", 1)[1])}
        assert not used, f"{d} holds {used}: re-priced vehicles would no longer update in place"
    options = db.execute("SELECT reloptions FROM pg_class WHERE oid = 'vehicles'::regclass"
                         ).fetchone()["reloptions"]
    assert "fillfactor=80" in options  # room on each page for the new row versions


def test_re_priced_vehicles_are_updated_in_place(db, tmp_path):
    import time

    def hot_updates():
        return db.execute("SELECT n_tup_hot_upd AS n FROM pg_stat_user_tables"
                          " WHERE relname = 'vehicles'").fetchone()["n"]

    d = dealer(db)
    rows = list(make_feed.rows(200, seed=9))
    assert ingest(db, d, write_csv(tmp_path / "a.csv", rows)).counters["added"] == 200
    before = hot_updates()
    # every tenth vehicle: a page holds about six, and keeps room for one new version each
    # (a daily feed re-prices a few percent of a dealer's cars, spread over the table)
    for r in rows[::10]:
        r[14] = "$54,321"  # SellingPrice
    again = ingest(db, d, write_csv(tmp_path / "b.csv", rows))
    assert again.counters["changed"] == 20 and again.counters["price_changed"] == 20
    # the writer's backend reports its counts when its connection closes, a moment later
    deadline = time.monotonic() + 15
    while hot_updates() - before < 20 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert hot_updates() - before >= 20


def test_known_source_hashes_stream_in_groups_of_ids(db, tmp_path):
    from crawler.db import source_hashes as source_hashes_db

    d = dealer(db)
    rows = list(make_feed.rows(20, seed=8))
    ingest(db, d, write_csv(tmp_path / "a.csv", rows[:10]))
    db.execute("SELECT setval(pg_get_serial_sequence('vehicles', 'id'), 300000)")
    ingest(db, d, write_csv(tmp_path / "b.csv", rows))  # the second ten: ids past 300,000
    ids = [r["id"] >> 16 for r in db.execute(
        "SELECT id FROM vehicles WHERE dealership_id = %s", (d.id,))]
    assert len(set(ids)) == 2  # two groups, so two streamed rows
    groups = list(source_hashes_db.source_hashes(db, d.id, by_blocks=False))
    assert len(groups) == 2
    known = {h: vin for hashes, vins in groups for h, vin in zip(hashes, vins, strict=True)}
    by_blocks = list(source_hashes_db.source_hashes(db, d.id, by_blocks=True))
    assert {h: vin for hashes, vins in by_blocks
            for h, vin in zip(hashes, vins, strict=True)} == known
    stored = {r["source_hash"]: r["vin"] for r in db.execute(
        "SELECT source_hash, vin FROM vehicles WHERE dealership_id = %s", (d.id,))}
    assert {f"{h:016x}": vin for h, vin in known.items()} == stored
    assert len(stored) == 20
    again = ingest(db, d, write_csv(tmp_path / "c.csv", rows))
    assert again.counters["unchanged"] == 20


def test_known_hashes_are_read_by_block_ranges_only_for_a_dealer_that_fills_the_table(db):
    """A dealer holding most of vehicles is read a sixteenth of the table at a time, every
    vehicle once, from one snapshot; a small dealer among many through its index."""
    from crawler.db import source_hashes as source_hashes_db

    big, small = dealer(db, "big"), dealer(db, "small")
    for d, n in ((big, 30_000), (small, 20)):
        db.execute(
            "INSERT INTO vehicles (dealership_id, vin, content_hash, source_hash)"
            " SELECT %s, %s || lpad(i::text, 12, '0'), 'c',"
            " CASE WHEN i %% 7 = 0 THEN NULL ELSE lpad(to_hex(i), 16, '0') END"
            " FROM generate_series(1, %s) i", (d.id, d.slug[:5].upper().ljust(5, "X"), n))
    db.execute("UPDATE vehicles SET status = 'removed' WHERE vin LIKE '%%00000000005'")
    db.execute("ANALYZE vehicles")
    for d in (big, small):
        expected = {r["vin"]: r["source_hash"] for r in db.execute(
            "SELECT vin, source_hash FROM vehicles WHERE dealership_id = %s"
            " AND status = 'active'", (d.id,))}
        for way in (None, True, False):
            got = [(vin, None if h is None else f"{h:016x}")
                   for hashes, vins in source_hashes_db.source_hashes(db, d.id, by_blocks=way)
                   for h, vin in zip(hashes, vins, strict=True)]
            assert len(got) == len(expected) and dict(got) == expected, (d.slug, way)
    plan = {d.slug: source_hashes_db._reads_every_row(list(db.execute(
        f"EXPLAIN (FORMAT JSON) {source_hashes_db._KNOWN_BY_IDS}", {"d": d.id}
    ).fetchone().values())) for d in (big, small)}
    assert plan == {"big": True, "small": False}


def test_look_ups_are_read_ahead_for_a_staged_chunk_and_dropped_when_too_late(db):
    from concurrent.futures import Future

    from crawler.models import Vehicle
    from pipelines import run as run_mod

    d = dealer(db)
    job, _ = jobs_db.create_or_get_active(db, d.id, "feed", "operator")
    run = run_mod.open_run(db, d.id, job.id, "feed", vins_only=True, overlap_writes=True)
    try:
        car = Vehicle(vin="1HGCM82633A004352", source="row 1",
                      image_urls=["https://cdn.test/a.jpg"])
        chunk: Future = Future()
        chunk.set_result(([tuple(car.__dict__.values())], []))
        aheads = feed._Aheads(finished=0)
        feed._read_ahead(run, aheads, 1, chunk)  # staged before the parent got to it
        looked = aheads.looks[1].result()
        assert looked.heroes == {"https://cdn.test/a.jpg"}
        assert looked.vins == {"1HGCM82633A004352"}
        late = feed._Aheads(finished=2)
        feed._read_ahead(run, late, 2, chunk)  # the parent finished chunk 2 without it
        assert late.looks == {}
    finally:
        run_mod.close(run, complete=False)
    assert run.reader is None and run.writer is None


def test_a_price_and_mileage_with_no_break_space_separators_are_stored_whole(db, tmp_path):
    """Bytbil's real listing text ("489\xa0900 kr", "4\xa0466 mil") in a JSON feed row. (The
    list shows no VIN: the row borrows a real one from fixtures/real/vins-vpic and states no
    make or model to contradict it.)"""
    from tests.pipelines.test_normalize import bytbil_listings

    row = bytbil_listings()[0]
    path = tmp_path / "bytbil.json"
    path.write_text(json.dumps([{"vin": "WAUFFGFF8F1068897", "year": row["year"],
                                 "price": row["price"], "currency": "SEK",
                                 "mileage": row["mileage"], "condition": "used",
                                 "description": row["title"]}], ensure_ascii=False))
    ingest(db, dealer(db, "bytbil"), path)
    stored = db.execute("SELECT price, currency, mileage FROM vehicles").fetchone()
    # 4,466 Swedish mil = 44,660 km = 27,750 miles
    assert (stored["price"], stored["mileage"]) == (Decimal("489900.00"), 27750)
    assert stored["currency"] == "SEK"  # a currency column is mapped (it was stored USD)


def test_a_currency_column_holding_symbols_and_names_is_stored_as_iso_codes(db, tmp_path):
    """A currency column saying '€', 'us$' or 'pounds' was stored verbatim or cut to three
    letters ('POU'); one naming no currency ('Bitcoin' was 'BIT') is not stored, it is
    flagged, and the row's price names its currency or the default (USD) stays."""
    rows = [("1HGCM82633A004352", "18500", "€"), ("2T3P1RFV7PC338201", "25000", "us$"),
            ("3GNAXKEG2RS112233", "12995", "pounds"), ("19XFC2F7XME104512", "€ 18.500", "Bitcoin"),
            ("WAUFFGFF8F1068897", "18500", "Bitcoin")]
    path = tmp_path / "feed.csv"
    path.write_text("VIN,Year,Make,Model,Price,Currency\n" + "".join(
        f'{vin},2019,Toyota,Corolla,"{price}",{money}\n' for vin, price, money in rows))
    job = ingest(db, dealer(db, "symbols"), path)
    assert job.counters["added"] == 5
    stored = {r["vin"]: (r["currency"], "currency_unknown" in r["quality_flags"])
              for r in db.execute("SELECT vin, currency, quality_flags FROM vehicles")}
    assert stored == {"1HGCM82633A004352": ("EUR", False), "2T3P1RFV7PC338201": ("USD", False),
                      "3GNAXKEG2RS112233": ("GBP", False), "19XFC2F7XME104512": ("EUR", True),
                      "WAUFFGFF8F1068897": ("USD", True)}


def test_prices_that_name_their_currency_are_stored_in_it_up_to_its_ceiling(db, tmp_path):
    """A feed without a currency column: each row's price text names its currency, and a
    price in a currency of small units is no longer refused above 10,000,000; a Vietnamese
    dealer's 15.5 billion dong (about $600k) overflowed the price column, numeric(12, 2)."""
    rows = [("1HGCM82633A004352", "€ 18,5 k"), ("2T3P1RFV7PC338201", "2019 $25,000"),
            ("3GNAXKEG2RS112233", "15.500.000.000 ₫"), ("19XFC2F7XME104512", "₹1.2 crore"),
            ("WAUFFGFF8F1068897", "12,800,000")]
    path = tmp_path / "feed.csv"
    path.write_text("VIN,Year,Make,Model,Price\n"
                    + "".join(f'{vin},2019,Toyota,Corolla,"{price}"\n' for vin, price in rows))
    job = ingest(db, dealer(db, "mixed"), path)
    assert job.counters["added"] == 5
    stored = {r["vin"]: (r["price"], r["currency"], "price_implausible" in r["quality_flags"])
              for r in db.execute("SELECT vin, price, currency, quality_flags FROM vehicles")}
    assert stored == {
        "1HGCM82633A004352": (Decimal("18500.00"), "EUR", False),
        "2T3P1RFV7PC338201": (Decimal("25000.00"), "USD", False),
        "3GNAXKEG2RS112233": (Decimal("15500000000.00"), "VND", False),
        "19XFC2F7XME104512": (Decimal("12000000.00"), "INR", False),
        "WAUFFGFF8F1068897": (None, "USD", True)}  # $12.8M: above the dollar's ceiling


def test_an_infiniti_on_nissans_wmi_is_stored_without_a_make_mismatch(db, tmp_path):
    """A real 2013 Infiniti JX35 (fixtures/real/vins-vpic) as a dealer's feed states it."""
    path = tmp_path / "infiniti.json"
    path.write_text(json.dumps([{"vin": "5N1AL0MM8DC306971", "year": "2013",
                                 "make": "INFINITI", "model": "JX35", "price": "$14,995",
                                 "mileage": "98,112 mi", "condition": "Used - Like New"}]))
    ingest(db, dealer(db, "infiniti"), path)
    stored = db.execute("SELECT make, condition, quality_flags, vin_decoded"
                        " FROM vehicles").fetchone()
    assert (stored["make"], stored["condition"]) == ("INFINITI", "used")
    assert "vin_make_mismatch" not in stored["quality_flags"]
    assert stored["vin_decoded"]["make"] == "Infiniti"


@pytest.mark.parametrize("tail", [b"\x1a", b"\x1a\r\n", b"\x1a\x1a\n \n", b"glued\x1a"])
def test_a_dos_end_of_file_mark_ends_a_csv_feed(db, tmp_path, tail):
    """Legacy exporters end a file with ^Z (\\x1a), sometimes and a line break: read as a
    last line short of fields and unterminated, it made every run partial ("looks cut
    short"), so the feed never added or removed a car. At the very end of the file it is
    the end of the file."""
    body = (FEEDS / "harbor-city-auto.csv").read_bytes()
    if tail.startswith(b"glued"):  # right after the last record, before any line break
        body, tail = body.rstrip(b"\r\n"), tail.removeprefix(b"glued")
    path = tmp_path / "export.csv"
    path.write_bytes(body + tail)
    d = dealer(db)
    job = ingest(db, d, path)
    assert (job.state, job.verdict) == ("succeeded", "healthy"), job.report["reasons"]
    assert job.counters["added"] == 6 and job.counters["rejected"] == 1
    kept = db.execute("SELECT v.description, r.payload FROM vehicles v, rejects r").fetchall()
    assert kept and "\x1a" not in json.dumps(kept, ensure_ascii=False, default=str)
    again = ingest(db, d, path)  # the next day's export: every row unchanged, healthy
    assert (again.state, again.verdict) == ("succeeded", "healthy"), again.report["reasons"]
    assert again.counters["unchanged"] == 6 and again.counters["removed"] == 0
    # a car gone from the export is removed: the run is complete
    lines = body.split(b"\r\n")
    sold = next(ln for ln in lines if b"4T1G11AK9LU401122" in ln)
    path.write_bytes(b"\r\n".join(ln for ln in lines if ln != sold) + tail)
    third = ingest(db, d, path)
    assert third.state == "succeeded" and third.counters["removed"] == 1, third.report


@pytest.mark.parametrize("codec, bom", [("utf-16", b""), ("utf-16-be", b"\xfe\xff"),
                                        ("utf-16-le", b""), ("utf-16-be", b"")],
                         ids=["bom-le", "bom-be", "le", "be"])
def test_a_dos_end_of_file_mark_ends_a_utf16_csv_feed(db, tmp_path, codec, bom):
    """The same for a UTF-16 export (with or without a BOM, gzip'd): its ^Z made every
    run partial; without a BOM its rows were read as Windows-1252 with NULs dropped."""
    import gzip as gz

    text = (FEEDS / "harbor-city-auto.csv").read_text().replace("Celestial Silver",
                                                               "Světle stříbrná")
    path = tmp_path / "export.csv.gz"
    path.write_bytes(gz.compress(bom + (text + "\x1a\r\n").encode(codec)))
    d = dealer(db)
    job = ingest(db, d, path)
    assert (job.state, job.verdict) == ("succeeded", "healthy"), job.report["reasons"]
    assert job.counters["added"] == 6 and job.counters["rejected"] == 1
    assert db.execute("SELECT count(*) AS n FROM vehicles WHERE exterior_color ="
                      " 'Světle stříbrná'").fetchone()["n"] == 1
    again = ingest(db, d, path)
    assert (again.state, again.verdict) == ("succeeded", "healthy"), again.report["reasons"]
    assert again.counters["unchanged"] == 6 and again.counters["removed"] == 0


def test_prices_with_a_magnitude_are_stored_whole_and_no_price_is_stored_wrong(db, tmp_path):
    """'$25k' and '$1.2 million' were dropped as placeholders, '-$5,000' (a rebate) stored
    as $5,000, a mileage of '~50k' as 50 and '1.5L' (an engine size) as 2."""
    vins = ["1HGCM82633A004352", "2T3P1RFV7PC338201", "5N1AL0MM8DC306971",
            "4T1G11AK9LU401122", "19XFC2F7XME104512"]
    cells = [("$25k", "~50k"), ("$1.2 million", "12,345 mi"), ("-$5,000", "1.5L"),
             ("twenty thousand", "15 000 km"), ("CHF 12'345.-", "12'345 km")]
    path = tmp_path / "stock.json"
    path.write_text(json.dumps([{"vin": v, "make": "Honda", "model": "Accord", "year": "2020",
                                 "price": p, "mileage": m, "condition": "used"}
                                for v, (p, m) in zip(vins, cells, strict=True)]))
    ingest(db, dealer(db), path)
    stored = {r["vin"]: (r["price"], r["mileage"], "price_implausible" in r["quality_flags"])
              for r in db.execute("SELECT vin, price, mileage, quality_flags FROM vehicles")}
    assert stored == {vins[0]: (Decimal("25000.00"), 50_000, False),
                      vins[1]: (Decimal("1200000.00"), 12_345, False),
                      vins[2]: (None, None, True),
                      vins[3]: (Decimal("20000.00"), 9_321, False),
                      vins[4]: (Decimal("12345.00"), 7_671, False)}


def test_a_dos_end_of_file_mark_ends_a_real_json_snapshot(db, tmp_path):
    """The same for JSON, where text after the list's closing ] made the run incomplete."""
    import gzip as gz

    daily = PROJECT_ROOT / "fixtures" / "real" / "jkomskis-daily"
    records = [r for r in json.loads(gz.decompress(
        (daily / "inventory_2026_02_16.json.gz").read_bytes()))
        if r.get("dealer_name") == "Toyota of Bellevue"]
    path = tmp_path / "inventory.json"
    path.write_bytes(json.dumps(records).encode() + b"\r\n\x1a")
    job = ingest(db, dealer(db), path)
    assert job.state == "succeeded", job.report["reasons"]  # complete: it may remove
    assert job.counters["items"] == len(records) and job.counters["added"] > 0


@pytest.mark.parametrize("body, why", [
    (b"Stock,Type,Year,Make,Model,VIN\r\n",
     "export.csv has a header (6 columns) but no rows: check the export"),
    (b"Stock,Type,Year,Make,Model,VIN\r\n\r\n\r\n",
     "export.csv has a header (6 columns) but no rows: check the export"),
    (b"", "export.csv is empty: check the export"),
    (b"\xef\xbb\xbf\r\n", "export.csv is empty: check the export"),
])
def test_a_csv_feed_without_rows_says_why_and_removes_nothing(db, tmp_path, body, why):
    """An export that wrote only its header (or nothing) failed as "no vehicles found",
    which did not say the file itself was the trouble."""
    d = dealer(db)
    assert ingest(db, d, FEEDS / "harbor-city-auto.csv").counters["added"] == 6
    path = tmp_path / "export.csv"
    path.write_bytes(body)
    job = ingest(db, d, path)
    assert job.state == "failed" and job.verdict == "failed"
    assert job.error.startswith(why), job.error
    assert job.counters["removed"] == 0
    assert db.execute("SELECT count(*) AS n FROM vehicles WHERE dealership_id = %s"
                      " AND status = 'active'", (d.id,)).fetchone()["n"] == 6


def test_json_values_that_are_not_text_are_not_stored_as_text(db, tmp_path):
    """{"url": false, "make": "data:image/png;base64,..."} was stored as url 'False' and
    that make."""
    path = tmp_path / "feed.json"
    path.write_text(json.dumps([
        {"vin": "1HGCM82633A004352", "url": False, "make": "data:image/png;base64,AAAA",
         "model": "x"},
        {"vin": "JN8BT3BB7NW300112", "url": False, "make": "Nissan", "model": "Rogue",
         "year": 2022, "stock": True},
    ]))
    d = dealer(db)
    job = ingest(db, d, path)
    assert job.counters["added"] == 1 and job.counters["rejected"] == 1
    reject = rejects_db.list_for(db, d.id)[0]
    assert reject["payload"]["vin"] == "1HGCM82633A004352" and any(
        r.startswith("make ") and "link" in r for r in reject["reasons"]), reject
    car = db.execute("SELECT * FROM vehicles WHERE dealership_id = %s", (d.id,)).fetchone()
    assert car["vin"] == "JN8BT3BB7NW300112" and car["url"] is None
    assert "url_not_text" in car["quality_flags"]


@pytest.mark.parametrize("declared", ["windows-1252", "ISO-8859-1"])
def test_an_xml_feed_declaring_a_single_byte_encoding_over_utf8_is_stored_right(
        db, tmp_path, declared):
    """An exporter's hard-coded `encoding="windows-1252"` over UTF-8 bytes: the colour was
    stored as mojibake (Citro\u00c3\u00abn), or the run stopped at \u00c1 (C3 81: 0x81 is
    undefined in windows-1252) and lost the cars after it. The run says what it did."""
    colour = "Blanc Citro\u00ebn \u00c1rtico \u00cdndigo"
    body = (FEEDS / "meta-automotive-catalog.xml").read_text()
    body = body.replace('encoding="UTF-8"', f'encoding="{declared}"')
    path = tmp_path / "catalog.xml"
    path.write_bytes(body.replace("Summit White", colour).encode())
    d = dealer(db)
    job = ingest(db, d, path)
    assert job.state == "succeeded" and job.counters["added"] == 2, job.report
    assert job.report["feed"]["encoding"] == "utf-8"
    assert job.report["feed"]["declared_encoding"] == declared
    stored = db.execute("SELECT vin, exterior_color FROM vehicles WHERE dealership_id = %s"
                        " ORDER BY vin", (d.id,)).fetchall()
    assert [(r["vin"], r["exterior_color"]) for r in stored] == [
        ("3GNAXKEG2RS112233", colour), ("3VW6T7AU3KM022910", None)]


@pytest.mark.parametrize("packing", ["plain", "gzip"])
@pytest.mark.parametrize("declared", ["windows-1252", "ISO-8859-1", "US-ASCII"])
def test_a_long_xml_feed_over_utf8_whose_first_accent_is_late_is_stored_right(
        db, tmp_path, declared, packing):
    """The same declaration over UTF-8 bytes, in a Google feed whose first 64 KB are ASCII
    and whose first accented make is in its 150th car: it was read as declared, the run
    stopping short (\u00c1 in windows-1252, any accent in US-ASCII) and removing nothing,
    or storing Citro\u00c3\u00abn."""
    rows = list(make_feed.rows(200, seed=11))
    rows[150][3:5] = ["Citro\u00ebn", "\u0160koda \u00c1gil \u00cdndigo"]  # Make, Model
    body = (f'<?xml version="1.0" encoding="{declared}"?>\n<rss version="2.0" '
            'xmlns:g="http://base.google.com/ns/1.0"><channel>\n<title>t</title>\n'
            + "".join(make_feed._google_item(r) for r in rows) + "</channel></rss>\n"
            ).encode()
    assert body[:64 * 1024].isascii()
    path = tmp_path / ("feed.xml.gz" if packing == "gzip" else "feed.xml")
    path.write_bytes(gzip.compress(body) if packing == "gzip" else body)
    d = dealer(db)
    job = ingest(db, d, path)
    assert job.state == "succeeded" and job.counters["added"] == 200, job.report
    assert job.report["feed"]["encoding"] == "utf-8"
    assert job.report["feed"]["declared_encoding"] == declared
    car = db.execute("SELECT make, model FROM vehicles WHERE dealership_id = %s AND vin = %s",
                     (d.id, rows[150][16])).fetchone()
    assert (car["make"], car["model"]) == ("Citro\u00ebn", "\u0160koda \u00c1gil \u00cdndigo")
