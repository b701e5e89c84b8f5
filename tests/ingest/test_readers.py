"""Streaming readers: every format, encodings, compression, size limits and broken input."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

import pytest

from crawler.config import PROJECT_ROOT, reset_settings
from crawler.errors import Permanent
from ingest import json_reader, readers
from ingest.rows import Unreadable, listed_vin
from ingest.streams import FeedTooLarge
from ingest.xml_reader import UnsafeXML

FEEDS = PROJECT_ROOT / "fixtures" / "feeds"


def read(path: Path, fmt: str | None = None, info: dict | None = None):
    return list(readers.read(path, fmt, info))


def rows_of(path: Path, fmt: str | None = None):
    return [r for _, r in read(path, fmt)]


@pytest.fixture
def limits(monkeypatch):
    """Set feed limits through the environment, as an operator would."""
    def set_(**values):
        for k, v in values.items():
            monkeypatch.setenv(f"FORECOURT_{k.upper()}", str(v))
        reset_settings()
    yield set_
    monkeypatch.undo()
    reset_settings()


# -- CSV and TSV -------------------------------------------------------------------------------

@pytest.mark.parametrize("delimiter", [",", ";", "|", "\t"])
def test_any_delimiter_and_quoted_fields_with_newlines(tmp_path, delimiter):
    d = delimiter
    text = (f'VIN{d}Make{d}Description\n'
            f'19XFC2F7XME104512{d}Honda{d}"Line one\nline two, with ""quotes"" {d} too"\n'
            f'2T3P1RFV7PC338201{d}Toyota{d}plain\n')
    path = tmp_path / "feed.txt"
    path.write_text(text)
    rows = rows_of(path, "csv")
    assert rows == [
        {"VIN": "19XFC2F7XME104512", "Make": "Honda",
         "Description": f'Line one\nline two, with "quotes" {d} too'},
        {"VIN": "2T3P1RFV7PC338201", "Make": "Toyota", "Description": "plain"},
    ]


def test_records_the_caller_recognises_are_skipped_unparsed_and_the_rest_parsed_exactly(
        tmp_path):
    # a literal quote in an unquoted field (odd count, one line), a quoted field spanning
    # lines, and a line whose quotes are even although it opens a multi-line field
    text = ('VIN,Trim,Description\r\n'
            'A1,Base,plain\r\n'
            'A2,20" wheels,one line\r\n'
            'A3,Sport,"two\r\nlines"\r\n'
            'A4,5" lift,"opens\r\nand closes"\r\n'
            'A5,Base,last')
    path = tmp_path / "f.csv"
    path.write_bytes(text.encode())
    asked: list[bytes] = []

    def unchanged(line):
        asked.append(line)
        return line.startswith((b"A1", b"A5"))

    rows = list(readers.read(path, unchanged=unchanged))
    assert [n for n, _ in rows] == [1, 2, 3, 4, 5]
    assert rows[0][1] is None and rows[4][1] is None
    a2, a3, a4 = (r for _, r in rows[1:4])
    assert a2 == {"VIN": "A2", "Trim": '20" wheels', "Description": "one line"}
    assert a3["Description"] == "two\r\nlines" and a4["Description"] == "opens\r\nand closes"
    # what the fast path hashes: the record as written, without its line terminator
    assert a2.raw == b'A2,20" wheels,one line' and a2.text == 'A2,20" wheels,one line'
    assert a4.raw == b'A4,5" lift,"opens\r\nand closes"'
    assert a4.text == 'A4,5" lift,"opens\r\nand closes"'
    # asked once per record, with its first line's bytes; never about a continuation line
    assert asked == [b"A1,Base,plain", b'A2,20" wheels,one line', b'A3,Sport,"two',
                     b'A4,5" lift,"opens', b"A5,Base,last"]


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252", "utf-16"])
@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_records_read_the_same_whatever_the_encoding_and_line_ends(tmp_path, encoding, eol):
    # the same rows, with a multi-line quoted field; line ends mixed in the last case
    lines = ["VIN,Make,Notes", "A1,Škoda,plain", 'A2,Citroën,"two', 'lines"', "A3,Ford,last"]
    path = tmp_path / "f.csv"
    path.write_bytes(eol.join(lines).encode(encoding) + b"\r\n" + "A4,Kia,x\n".encode(encoding)
                     if encoding != "utf-16" else eol.join(lines).encode(encoding))
    info: dict = {}
    rows = [r for _, r in readers.read(path, info=info)]
    assert [(r["VIN"], r["Make"]) for r in rows][:3] == [("A1", "Škoda"), ("A2", "Citroën"),
                                                         ("A3", "Ford")]
    assert rows[1]["Notes"] == f"two{eol}lines" and info["encoding"] == encoding
    assert len(rows) == (3 if encoding == "utf-16" else 4)


def test_byte_lines_split_as_universal_newlines_across_chunk_boundaries():
    import io

    from ingest import streams

    # a CR LF cut between two chunks is one line end; a lone CR ends a line
    pieces = [b"a" * (streams.CHUNK_BYTES - 1) + b"\r", b"\nb\rc\r\n", b"d"]
    data = b"".join(pieces)
    got = list(streams.lines(io.BufferedReader(io.BytesIO(data), streams.CHUNK_BYTES)))
    assert got == [b"a" * (streams.CHUNK_BYTES - 1) + b"\r\n", b"b\r", b"c\r\n", b"d"]
    assert list(streams.lines(io.BytesIO(b""))) == []


def test_a_line_longer_than_the_limit_is_never_held_whole():
    """A feed with no line breaks (minified JSON read as CSV, a blob) was gathered into one
    line before anything checked its size: 100 MB took 250 MB of memory and 24 s, growing
    with the square of the size. The splitter hands on at most `longest` bytes of a line,
    marked as cut, and drops the rest of it."""
    import io

    from ingest import streams

    data = b"h1,h2\n" + b"x" * (5 * streams.CHUNK_BYTES) + b"\r\nnext,row\n" + b"y" * 10
    got = list(streams.lines(io.BufferedReader(io.BytesIO(data), streams.CHUNK_BYTES),
                             longest=1000))
    assert got[0] == b"h1,h2\n" and got[2:] == [b"\r\n", b"next,row\n", b"y" * 10]
    assert isinstance(got[1], streams.TooLong) and got[1] == b"x" * 1000


def test_a_csv_line_longer_than_the_record_limit_is_a_reject_and_reading_goes_on(tmp_path,
                                                                                 limits):
    limits(feed_max_record_chars=1000)
    path = tmp_path / "feed.csv"
    path.write_bytes(b"VIN,Make\n1HGCM82633A004352," + b"x" * 1_000_000 + b"\n"
                     b"2T3P1RFV7PC338201,Toyota\n")
    got = read(path)
    assert isinstance(got[0][1], Unreadable) and not got[0][1].fatal
    assert "longer than 1,000" in got[0][1].reason and got[0][1].vin == "1HGCM82633A004352"
    assert got[1] == (2, {"VIN": "2T3P1RFV7PC338201", "Make": "Toyota"})
    path.write_bytes(b"VIN,Make\n1HGCM82633A004352," + b"x" * 1_000_000)  # no line end
    assert read(path)[-1][1].fatal
    path.write_bytes(b"VIN,Make" + b",x" * 500_000 + b"\n")
    with pytest.raises(Permanent, match="first line"):
        read(path)


def test_tsv_by_extension(tmp_path):
    path = tmp_path / "feed.tsv"
    path.write_text("VIN\tPrice\n19XFC2F7XME104512\t$1,000\n")
    assert rows_of(path) == [{"VIN": "19XFC2F7XME104512", "Price": "$1,000"}]


def test_bom_is_not_part_of_the_first_column(tmp_path):
    path = tmp_path / "feed.csv"
    path.write_bytes("\ufeffVIN,Make\n19XFC2F7XME104512,Škoda\n".encode())
    info: dict = {}
    assert [r for _, r in read(path, info=info)] == [{"VIN": "19XFC2F7XME104512",
                                                     "Make": "Škoda"}]
    assert info["encoding"] == "utf-8"


def test_windows_1252_is_detected(tmp_path):
    path = tmp_path / "feed.csv"
    path.write_bytes("VIN,Make,Description\n1,Citroën,“Très bien” – 5€\n".encode("cp1252"))
    info: dict = {}
    rows = [r for _, r in read(path, info=info)]
    assert info["encoding"] == "cp1252"
    assert rows[0]["Make"] == "Citroën" and rows[0]["Description"] == "“Très bien” – 5€"


def test_stray_windows_1252_bytes_in_a_utf8_feed_are_decoded_not_dropped(tmp_path):
    head = "VIN,Make\n" + "".join(f"{i},Škoda\n" for i in range(30_000))  # > the sniffed head
    path = tmp_path / "feed.csv"
    path.write_bytes(head.encode() + "99,Citroën\n".encode("cp1252"))
    rows = rows_of(path)
    assert rows[0]["Make"] == "Škoda" and rows[-1] == {"VIN": "99", "Make": "Citroën"}


def test_utf16_with_bom(tmp_path):
    path = tmp_path / "feed.csv"
    path.write_bytes("VIN,Make\n1,Škoda\n".encode("utf-16"))
    assert rows_of(path) == [{"VIN": "1", "Make": "Škoda"}]


def test_malformed_rows_become_unreadable_with_row_numbers_and_reading_goes_on(tmp_path):
    path = tmp_path / "feed.csv"
    path.write_bytes(b'VIN,Make,Model\n'
                     b'AAA,Honda,Civic\n'
                     b'BBB,Toyota\n'  # too few fields
                     b'CCC,Ford,F-150,extra\n'  # too many
                     b'DDD,"Kia"x,Soul\n'  # junk after a closing quote
                     b'\x00\x01\x02\xff\xfe,\x80\x81,\x00\n'  # binary junk: 3 fields, read
                     b'EEE,Mazda,CX-5\n')
    got = read(path)
    numbers = [n for n, _ in got]
    assert numbers == [1, 2, 3, 4, 5, 6]
    assert got[0][1]["VIN"] == "AAA" and got[5][1]["VIN"] == "EEE"
    bad = {n: r for n, r in got if isinstance(r, Unreadable)}
    assert set(bad) == {2, 3, 4}
    assert "2 fields where the header has 3" in bad[2].reason
    assert "4 fields" in bad[3].reason and bad[3].raw == "CCC,Ford,F-150,extra"
    assert not any(r.fatal for r in bad.values())
    assert isinstance(got[4][1], dict)  # junk that parses is a row; validation rejects it


def test_unterminated_quote_at_the_end_is_a_fatal_unreadable_row(tmp_path):
    path = tmp_path / "feed.csv"
    path.write_text('VIN,Make\nAAA,Honda\nBBB,"Toyo\n')
    got = read(path)
    assert got[0] == (1, {"VIN": "AAA", "Make": "Honda"})
    assert isinstance(got[1][1], Unreadable) and got[1][1].fatal


def test_a_field_over_the_limit_is_unreadable_and_the_next_row_is_read(tmp_path, limits):
    limits(feed_max_record_chars=1000)
    path = tmp_path / "feed.csv"
    path.write_text("VIN,Description\nAAA," + "x" * 5000 + "\nBBB,short\n")
    got = read(path)
    assert isinstance(got[0][1], Unreadable) and "field limit" in got[0][1].reason
    assert got[-1][1] == {"VIN": "BBB", "Description": "short"}


# -- JSON and JSON Lines -----------------------------------------------------------------------

RECORDS = [{"vin": f"VIN{i:05d}", "price": 20000 + i, "note": "ünïcode ✓ " * (i % 3)}
           for i in range(50)]


@pytest.mark.parametrize("wrapped", [False, True])
def test_json_array_streams_records_across_tiny_chunks(tmp_path, monkeypatch, wrapped):
    monkeypatch.setattr(json_reader, "_CHUNK", 7)  # every record straddles chunk boundaries
    data = {"generated": "today", "meta": {"n": [1, 2]}, "vehicles": RECORDS} if wrapped \
        else RECORDS
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(data, indent=1))
    assert rows_of(path) == RECORDS


def test_json_broken_record_is_skipped_and_the_rest_read(tmp_path):
    path = tmp_path / "feed.json"
    path.write_text('[{"vin": "A", "price": 1}, {"vin": "B", "price": 2x}, {"vin": "C"}, 7]')
    got = read(path)
    assert got[0] == (1, {"vin": "A", "price": 1})
    assert isinstance(got[1][1], Unreadable) and got[1][0] == 2 and not got[1][1].fatal
    assert got[2] == (3, {"vin": "C"})
    assert isinstance(got[3][1], Unreadable) and "int, not an object" in got[3][1].reason


def test_truncated_json_keeps_what_was_read_and_says_it_is_cut(tmp_path):
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(RECORDS)[:-40])
    got = read(path)
    good = [r for _, r in got if isinstance(r, dict)]
    assert good == RECORDS[:len(good)] and len(good) >= 45
    assert isinstance(got[-1][1], Unreadable) and got[-1][1].fatal



@pytest.mark.parametrize("broken", [
    # a raw control character in a string, then nested objects in a list (real snapshots
    # carry "packages": [{...}, {...}]): the reader must not resume inside the record
    '{"vin": "B", "trim": "XLE\tPremium", "packages": [{"name": "P1"}, {"name": "P2"}]}',
    # the same after a number that does not parse, with "}, {" inside a string
    '{"vin": "B", "price": 1x, "note": "a}, {b", "packages": [{"name": "P1"}, {"n": 2}]}',
    # escaped quotes and backslashes in its strings
    '{"vin": "B", "price": 1x, "note": "say \\"}, {\\" \\\\", "p": [{"name": "P1"}]}',
])
@pytest.mark.parametrize("chunk", [7, 256 * 1024])
def test_json_broken_record_with_nested_objects_is_skipped_whole(tmp_path, monkeypatch,
                                                                   broken, chunk):
    monkeypatch.setattr(json_reader, "_CHUNK", chunk)
    path = tmp_path / "feed.json"
    path.write_text('[{"vin": "A"}, ' + broken + ', {"vin": "C"}, {"vin": "D"}]')
    got = read(path)
    assert [n for n, _ in got] == [1, 2, 3, 4]
    assert isinstance(got[1][1], Unreadable) and not got[1][1].fatal
    assert [r for _, r in got if not isinstance(r, Unreadable)] == [
        {"vin": "A"}, {"vin": "C"}, {"vin": "D"}]


def test_json_broken_record_whose_end_cannot_be_found_makes_the_feed_unreadable(tmp_path):
    path = tmp_path / "feed.json"
    path.write_text('[{"vin": "A"}, {"vin": "B", "x": [1x, {"vin": "C"}, {"vin": "D"}]')
    got = read(path)
    assert got[0] == (1, {"vin": "A"})
    assert isinstance(got[-1][1], Unreadable) and got[-1][1].fatal
    assert all(isinstance(r, Unreadable) for _, r in got[1:])



@pytest.mark.parametrize("text", [
    '[{"vin": "A"}] [{"vin": "B"}]',  # two arrays end to end
    '{"vehicles": [{"vin": "A"}]} {"vehicles": [{"vin": "B"}]}',
    '{"vehicles": [{"vin": "A"}], "next": [{"vin": "B"}], "count": }',
    # an unescaped quote: resuming inside the record meets its nested list's "]"
    '[{"vin": "A", "d": "17" wheels", "p": [{"n": "x"}, {"n": "y"}]}, {"vin": "C"}]',
])
def test_json_text_after_the_closing_bracket_is_not_a_whole_feed(tmp_path, text):
    path = tmp_path / "feed.json"
    path.write_text(text)
    got = read(path)
    assert got[0][1] == {"vin": "A"} or isinstance(got[0][1], Unreadable)
    assert isinstance(got[-1][1], Unreadable) and got[-1][1].fatal, got


def test_json_wrapper_members_after_the_list_are_read_past(tmp_path):
    path = tmp_path / "feed.json"
    path.write_text('{"vehicles": [{"vin": "A"}], "count": 1, "next": {"page": [2]}}\n')
    assert read(path) == [(1, {"vin": "A"})]


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_json_nested_too_deeply_is_a_broken_record_not_a_crash(tmp_path, fmt):
    deep = '{"vin": "B", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path = tmp_path / f"feed.{fmt}"
    path.write_text('[{"vin": "A"}, ' + deep + ', {"vin": "C"}]' if fmt == "json"
                    else '{"vin": "A"}\n' + deep + '\n{"vin": "C"}\n')
    got = read(path)
    assert got[0] == (1, {"vin": "A"}) and got[2] == (3, {"vin": "C"})
    assert isinstance(got[1][1], Unreadable) and "deeply" in got[1][1].reason


@pytest.mark.parametrize("text", ['{"dealer": "x"}', '{"error": "unauthorized"}',
                                  '{"vehicles": null, "status": 401}',
                                  '{"VIN": "1HGCM82633A004352"} {"VIN": "X"}'])
def test_json_that_is_not_a_list_is_refused(tmp_path, text):
    path = tmp_path / "feed.json"
    path.write_text(text)
    with pytest.raises(Permanent, match="without a list"):
        read(path)


@pytest.mark.parametrize("text, message", [
    ('{"broken json\n', "ends before its list of vehicles"),  # cut off
    ('{"dealer": "x", "vehi', "ends before its list of vehicles"),
    ('{"dealer": x, "vehicles": []}', "is not valid JSON: Expecting value"),  # malformed
])
def test_json_broken_before_its_list_says_so_not_that_it_has_no_list(tmp_path, text, message):
    """An object cut off or malformed before its list of vehicles began was refused as
    "an object without a list of vehicles": the fix it named (give a list) was no fix."""
    path = tmp_path / "feed.json"
    path.write_text(text)
    with pytest.raises(Permanent, match=message) as refused:
        read(path)
    assert "without a list" not in str(refused.value)


def test_a_bare_json_object_naming_a_vin_is_one_vehicle(tmp_path):
    """A dealer with one car whose export writes it as an object, not a one-element list."""
    path = tmp_path / "feed.json"
    path.write_text(' {"VIN": "1HGCM82633A004352", "Make": "Honda", "Price": 9500}\n')
    assert read(path) == [(1, {"VIN": "1HGCM82633A004352", "Make": "Honda", "Price": 9500})]


@pytest.mark.parametrize("tail, terminated", [
    (b"CCC,Ford", False),          # cut between fields: short, no line break
    (b"CCC,Ford\n", True),         # a short record on a whole line: a reject, not a cut
    (b'CCC,"Fo"x', False),          # junk after a quote, and no line break
])
def test_a_last_record_without_a_line_break_that_does_not_read_is_a_cut(tmp_path, tail,
                                                                         terminated):
    path = tmp_path / "feed.csv"
    path.write_bytes(b"VIN,Make,Model\nAAA,Honda,Civic\n" + tail)
    got = read(path)
    assert got[0][1]["VIN"] == "AAA"
    bad = got[1][1]
    assert isinstance(bad, Unreadable) and bad.fatal is (not terminated)
    assert ("cut short" in bad.reason) is (not terminated)


@pytest.mark.parametrize("text, vin", [
    ("S1,2t36crav0tw10i008,2026,Toyota,https://x.example/new-2T36CRAV0TW10I008,a,b",
     "2T36CRAV0TW10I008"),  # lower case, and again in its URL: one VIN
    ("S1,2T36CRAV0TW10I008,x\nS2,2T36CRAV1TW10E369,y", None),  # two rows swallowed: none
    ("S1,12345678901234567,ABCDEFGHIJKLMNOPQ,X2T36CRAV0TW10I008", None),  # no VIN-like token
    (None, None),
])
def test_an_unreadable_row_names_the_one_vin_its_text_holds(text, vin):
    assert listed_vin(text) == vin


def test_a_ragged_csv_row_keeps_the_vin_it_names(tmp_path):
    path = tmp_path / "feed.csv"
    path.write_bytes(b"VIN,Make,Note\n1HGCM82633A004352,Honda,clean, one owner\n")
    (_, bad), = read(path)
    assert isinstance(bad, Unreadable) and bad.vin == "1HGCM82633A004352"


def test_a_whole_last_record_without_a_line_break_is_a_row(tmp_path):
    path = tmp_path / "feed.csv"
    path.write_bytes(b"VIN,Make,Model\r\nAAA,Honda,Civic\r\nBBB,Kia,Soul")
    assert rows_of(path) == [{"VIN": "AAA", "Make": "Honda", "Model": "Civic"},
                             {"VIN": "BBB", "Make": "Kia", "Model": "Soul"}]


def test_repeated_header_names_keep_the_first_and_rename_the_repeats(tmp_path):
    path = tmp_path / "feed.csv"
    path.write_bytes(b"VIN,Price,price,Price,Price (2),Price\nAAA,1,2,3,4,5\n")
    info: dict = {}
    got = read(path, info=info)
    # names differing in case are two columns; a repeat never takes a name the header uses
    assert got[0][1] == {"VIN": "AAA", "Price": "1", "price": "2", "Price (3)": "3",
                         "Price (2)": "4", "Price (4)": "5"}
    assert info["duplicate_columns"] == ["Price"]


def test_blank_header_cells_are_named_by_their_position(tmp_path):
    """Excel exports often end the header with empty cells: they were read as columns ''
    and ' (2)', reported as repeated, and listed as 'unknown columns: ,  (2)'."""
    path = tmp_path / "feed.csv"
    path.write_bytes(b"VIN,,Make, ,\nAAA,x,Honda,,\n")
    info: dict = {}
    got = read(path, info=info)
    assert got[0][1] == {"VIN": "AAA", "(column 2)": "x", "Make": "Honda",
                         "(column 4)": "", "(column 5)": ""}
    assert "duplicate_columns" not in info


def test_json_lines_cut_inside_the_last_line_is_fatal(tmp_path):
    path = tmp_path / "feed.jsonl"
    path.write_text('{"vin": "A"}\n{"vin": "B", "pr')
    got = read(path)
    assert got[0][1] == {"vin": "A"}
    assert got[1][1].fatal and "cut short" in got[1][1].reason
    path.write_text('{"vin": "A"}\n{"vin": "B"}')  # whole, without a final line break
    assert rows_of(path) == [{"vin": "A"}, {"vin": "B"}]


def test_json_lines_bad_line_is_unreadable(tmp_path):
    path = tmp_path / "feed.jsonl"
    path.write_text('{"vin": "A"}\n\nnot json\n[1]\n{"vin": "B"}\n')
    got = read(path)
    assert [n for n, _ in got] == [1, 2, 3, 4]
    assert got[0][1] == {"vin": "A"} and got[3][1] == {"vin": "B"}
    assert "line 3 is not JSON" in got[1][1].reason and "not an object" in got[2][1].reason


# -- XML ---------------------------------------------------------------------------------------

def test_google_vehicle_listings_rss():
    rows = rows_of(FEEDS / "google-vehicle-listings.xml")
    assert len(rows) == 3
    first = rows[0]
    assert first["vin"] == "19XFC2F7XME104512" and first["price"] == "24995 USD"
    assert first["additional_image_link"] == ["https://lakeside.example/img/civic-2.jpg",
                                              "https://lakeside.example/img/civic-3.jpg"]
    assert "<b>new tires</b>" in first["description"]  # CDATA kept as text


def test_meta_catalog_nested_fields():
    rows = rows_of(FEEDS / "meta-automotive-catalog.xml")
    assert rows[0]["mileage"] == {"value": "12", "unit": "MI"}
    assert [i["url"] for i in rows[0]["image"]] == ["https://riverside.example/i/rm1-a.jpg",
                                                    "https://riverside.example/i/rm1-b.jpg"]
    assert rows[1]["image"] == {"url": "https://riverside.example/i/rm2-a.jpg"}


GOOGLE_NO_XMLNS = (b'<?xml version="1.0"?><rss version="2.0"><channel>'
                   b'<item><g:vin>AAA</g:vin><g:price>1 USD</g:price></item>'
                   b'<item><g:vin>BBB</g:vin></item></channel></rss>\n')


def test_google_feed_using_g_without_declaring_it_is_read_whole(tmp_path):
    """Found by review: libxml2 reports the undeclared prefix as the document ends, and
    the run took it for a truncated feed (degraded, removing nothing, every day)."""
    cut = tmp_path / "cut.xml"
    cut.write_bytes(b"<rss><channel><item><vin>AAA")
    assert read(cut)[-1][1].fatal  # lxml keeps this error in its log for the thread
    path = tmp_path / "feed.xml"
    path.write_bytes(GOOGLE_NO_XMLNS)
    assert read(path) == [(1, {"vin": "AAA", "price": "1 USD"}), (2, {"vin": "BBB"})]


def test_google_feed_without_xmlns_cut_short_is_still_a_cut(tmp_path):
    path = tmp_path / "feed.xml"
    path.write_bytes(GOOGLE_NO_XMLNS[:GOOGLE_NO_XMLNS.index(b"<item><g:vin>BBB") + 12])
    got = read(path)
    assert got[0][1] == {"vin": "AAA", "price": "1 USD"}
    assert got[-1][1].fatal and "Namespace" not in got[-1][1].reason


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<rss><channel><item><vin>&lol3;</vin></item></channel></rss>"""


def test_entity_expansion_and_external_entities_are_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    xxe = (f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY s SYSTEM "file://{secret}">]>'
           '<listings><listing><vin>&s;</vin></listing></listings>').encode()
    for i, body in enumerate((BILLION_LAUGHS, xxe)):
        path = tmp_path / f"evil{i}.xml"
        path.write_bytes(body)
        with pytest.raises(UnsafeXML, match="DOCTYPE"):
            read(path)


def test_undeclared_entity_without_doctype_is_never_expanded(tmp_path):
    path = tmp_path / "feed.xml"
    path.write_text("<listings><listing><vin>&ent;</vin></listing></listings>")
    try:
        rows = rows_of(path)
    except UnsafeXML:
        return
    assert all(isinstance(r, Unreadable) or not r.get("vin") for r in rows)


def test_truncated_xml_yields_what_it_read_then_a_fatal_unreadable(tmp_path):
    text = (FEEDS / "google-vehicle-listings.xml").read_text()
    path = tmp_path / "feed.xml"
    path.write_text(text[:text.index("LS-503")])
    got = read(path)
    assert [r["vin"] for _, r in got[:2]] == ["19XFC2F7XME104512", "2T3P1RFV7PC338201"]
    assert isinstance(got[-1][1], Unreadable) and got[-1][1].fatal



def _listings(description: bytes, declaration: bytes = b'<?xml version="1.0" encoding="UTF-8"?>'
              ) -> bytes:
    item = b"<listing><vin>%s</vin><description>%s</description></listing>\n"
    return (declaration + b"\n<listings>\n" + item % (b"1HGCM82633A004352", b"plain")
            + item % (b"2T3P1RFV7PC338201", description)
            + item % (b"3GNAXKEG2RS112233", "caf\u00e9".encode()) + b"</listings>\n")


@pytest.mark.parametrize("declaration", [b'<?xml version="1.0" encoding="UTF-8"?>',
                                         b'<?xml version="1.0"?>', b""])
def test_xml_in_utf8_with_stray_windows_1252_bytes_is_decoded_not_refused(tmp_path,
                                                                           declaration):
    """A dealer system writing Windows-1252 into a feed that says UTF-8 (as CSV feeds do):
    lxml stopped at the first such byte, and every record after it was lost."""
    path = tmp_path / "feed.xml"
    path.write_bytes(_listings("Tr\u00e8s belle \u20ac \u201cA\u201d".encode("cp1252"),
                               declaration))
    rows = rows_of(path)
    assert [r["vin"] for r in rows] == ["1HGCM82633A004352", "2T3P1RFV7PC338201",
                                        "3GNAXKEG2RS112233"]
    assert rows[1]["description"] == "Tr\u00e8s belle \u20ac \u201cA\u201d"
    assert rows[2]["description"] == "caf\u00e9"


def test_xml_with_control_characters_xml_forbids_drops_them_and_reads_on(tmp_path):
    """NUL and other C0 controls (a vertical tab from a spreadsheet cell, a ^Z) are not
    allowed in XML 1.0; the CSV readers drop NUL and keep reading, lxml stopped."""
    path = tmp_path / "feed.xml"
    path.write_bytes(_listings(b"two\x0blines\x00 and \x1a tab\tkept"))
    rows = rows_of(path)
    assert len(rows) == 3 and rows[1]["description"] == "twolines and  tab\tkept"


@pytest.mark.parametrize("written", ["utf-16", "le-bom", "be-bom", "le", "be"])
def test_utf16_xml_with_control_characters_xml_forbids_reads_like_its_utf8_twin(tmp_path,
                                                                               written):
    """The same feed in UTF-16: only UTF-8 XML had the forbidden controls dropped, so lxml
    stopped at a UTF-16 feed's vertical tab and every record after it was lost."""
    codec, bom = _UTF16[written]
    text = _listings(b"two\x0blines\x00 and \x1a tab\tkept \xc3\xa9",
                     b'<?xml version="1.0" encoding="UTF-16"?>').decode()
    path = tmp_path / "feed.xml"
    path.write_bytes(bom + text.encode(codec))
    rows = rows_of(path)
    assert [r["vin"] for r in rows] == ["1HGCM82633A004352", "2T3P1RFV7PC338201",
                                        "3GNAXKEG2RS112233"]
    assert rows[1]["description"] == "twolines and  tab\tkept \u00e9"
    assert rows[2]["description"] == "caf\u00e9"


@pytest.mark.parametrize("codec, declared, word", [
    ("latin-1", "ISO-8859-1", "caf\u00e9"), ("cp1252", "windows-1252", "\u20ac \u201cA\u201d"),
    ("cp1252", "WINDOWS-1252", "\u00e9t\u00e9"), ("iso8859-15", "iso-8859-15", "\u20ac \u0153"),
    ("latin-1", "latin1", "\u00fcber"), ("shift_jis", "Shift_JIS", "\u65e5\u672c"),
])
def test_xml_in_a_declared_ascii_compatible_encoding_with_forbidden_controls_reads_on(
        tmp_path, codec, declared, word):
    """The same feed declaring ISO-8859-1, windows-1252 or Shift_JIS: only UTF-8 and
    UTF-16 XML had the forbidden controls dropped, so lxml stopped at a Latin-1 feed's
    vertical tab or ^Z and every record after it was lost."""
    text = _listings(("two\x0blines\x00 and \x1a tab\tkept " + word).encode(),
                     b'<?xml version="1.0" encoding="%s"?>' % declared.encode()).decode()
    path = tmp_path / "feed.xml"
    path.write_bytes(text.replace("caf\u00e9", word).encode(codec))
    rows = rows_of(path)
    assert [r["vin"] for r in rows] == ["1HGCM82633A004352", "2T3P1RFV7PC338201",
                                        "3GNAXKEG2RS112233"]
    assert rows[1]["description"] == "twolines and  tab\tkept " + word
    assert rows[2]["description"] == word


@pytest.mark.parametrize("declared", ["windows-1252", "cp1252", "ISO-8859-1", "latin1",
                                      "US-ASCII"])
def test_xml_declaring_a_single_byte_encoding_but_written_in_utf8_is_read_as_utf8(
        tmp_path, declared):
    """Exporters hard-code `encoding="windows-1252"` (or ISO-8859-1) over UTF-8 bytes:
    read as declared, every accented letter became two (Citro\u00c3\u00abn), and in
    windows-1252 a letter whose UTF-8 holds one of its five undefined bytes (\u00c1 is
    C3 81, \u00cd is C3 8D) stopped lxml, losing every record after it."""
    word = "Citro\u00ebn \u00c1rtico \u00cdndigo"
    text = _listings(word.encode(), b'<?xml version="1.0" encoding="%s"?>' % declared.encode())
    path = tmp_path / "feed.xml"
    path.write_bytes(text)
    info: dict = {}
    rows = [r for _, r in read(path, info=info)]
    assert [r["vin"] for r in rows] == ["1HGCM82633A004352", "2T3P1RFV7PC338201",
                                        "3GNAXKEG2RS112233"]
    assert [r["description"] for r in rows] == ["plain", word, "caf\u00e9"]
    assert info["encoding"] == "utf-8" and info["declared_encoding"] == declared


@pytest.mark.parametrize("declared", ["windows-1252", "ISO-8859-1"])
def test_xml_really_in_its_declared_single_byte_encoding_is_read_as_declared(tmp_path,
                                                                            declared):
    """No false positive: a real windows-1252 / ISO-8859-1 feed (\u00eb is EB, \u20ac is 80
    in windows-1252) is not valid UTF-8 and is read as it says."""
    word = "Citro\u00ebn \u00c1 \u00cd" + (" \u20ac" if declared == "windows-1252" else "")
    text = _listings(word.encode(), b'<?xml version="1.0" encoding="%s"?>' % declared.encode())
    path = tmp_path / "feed.xml"
    path.write_bytes(text.decode().encode("cp1252" if declared == "windows-1252" else "latin-1"))
    info: dict = {}
    rows = [r for _, r in read(path, info=info)]
    assert [r["description"] for r in rows] == ["plain", word, "caf\u00e9"]
    assert "declared_encoding" not in info


def test_xml_read_as_utf8_against_its_declaration_reads_on_past_a_late_single_byte(tmp_path):
    """The start of the feed (what is sniffed) is UTF-8, a record far past it holds a lone
    windows-1252 byte: it is decoded as windows-1252, as in a UTF-8 feed, and every record
    is read."""
    filler = b"<listing><vin>1HGCM82633A004352</vin><description>%s</description></listing>\n"
    body = (b'<?xml version="1.0" encoding="windows-1252"?>\n<listings>\n'
            + filler % "\u00c1gil".encode()
            + filler % (b"x" * 200) * 400  # past the first 64 KB
            + filler % b"Citro\xebn \x80" + filler % "\u00cdndigo".encode() + b"</listings>\n")
    path = tmp_path / "feed.xml"
    path.write_bytes(body)
    rows = rows_of(path)
    assert len(rows) == 403 and not any(isinstance(r, Unreadable) for r in rows)
    assert [r["description"] for r in (rows[0], rows[-2], rows[-1])] == [
        "\u00c1gil", "Citro\u00ebn \u20ac", "\u00cdndigo"]


def _late_listings(declared: bytes, late: bytes, before: int = 300) -> bytes:
    """A feed declaring `declared` whose first byte beyond ASCII is past its first 64 KB
    (what is sniffed): `before` ASCII records of about 270 bytes, one whose description is
    `late`, and one more."""
    item = b"<listing><vin>V%05d</vin><description>%s</description></listing>\n"
    return (b'<?xml version="1.0" encoding="%s"?>\n<listings>\n' % declared
            + b"".join(item % (i, b"x" * 230) for i in range(before))
            + item % (before, late) + item % (before + 1, b"after") + b"</listings>\n")


def _packed(tmp_path: Path, body: bytes, packing: str) -> Path:
    if packing == "gzip":
        path = tmp_path / "feed.xml.gz"
        path.write_bytes(gzip.compress(body))
    elif packing == "zip":
        path = tmp_path / "feed.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("export/feed.xml", body)
    else:
        path = tmp_path / "feed.xml"
        path.write_bytes(body)
    return path


@pytest.mark.parametrize("packing", ["plain", "gzip", "zip"])
@pytest.mark.parametrize("declared", ["windows-1252", "ISO-8859-1", "US-ASCII"])
def test_xml_declaring_a_single_byte_encoding_over_utf8_first_beyond_ascii_late_is_utf8(
        tmp_path, declared, packing):
    """A long feed with a hard-coded `encoding="windows-1252"` (or ISO-8859-1, US-ASCII)
    over UTF-8 bytes whose first accented name is in record 300: its first 64 KB are ASCII,
    so it was read as declared, the run stopping at \u00c1 (C3 81: 0x81 is undefined in
    windows-1252) or at the first byte beyond US-ASCII and losing every record after it,
    or storing Citro\u00c3\u00abn."""
    word = "Citro\u00ebn \u0160koda \u00c1gil \u00cdndigo"
    body = _late_listings(declared.encode(), word.encode())
    assert body[:64 * 1024].isascii()
    info: dict = {}
    rows = [r for _, r in read(_packed(tmp_path, body, packing), info=info)]
    assert len(rows) == 302 and not any(isinstance(r, Unreadable) for r in rows)
    assert [r["description"] for r in rows[-3:]] == ["x" * 230, word, "after"]
    assert info["encoding"] == "utf-8" and info["declared_encoding"] == declared


@pytest.mark.parametrize("declared, codec, word", [
    ("windows-1252", "cp1252", "Citro\u00ebn \u00c1gil \u0160koda \u20ac \u201cA\u201d"),
    ("ISO-8859-1", "latin-1", "Citro\u00ebn \u00c1gil \u00cdndigo"),
])
@pytest.mark.parametrize("packing", ["plain", "gzip"])
def test_xml_really_in_its_single_byte_encoding_first_beyond_ascii_late_is_read_as_declared(
        tmp_path, declared, codec, word, packing):
    """No false positive past the first 64 KB either: a real windows-1252 / ISO-8859-1 feed
    whose first accented letter comes late is read as it says."""
    body = _late_listings(declared.encode(), word.encode(codec))
    info: dict = {}
    rows = [r for _, r in read(_packed(tmp_path, body, packing), info=info)]
    assert len(rows) == 302 and not any(isinstance(r, Unreadable) for r in rows)
    assert [r["description"] for r in rows[-2:]] == [word, "after"]
    assert "declared_encoding" not in info


def test_xml_in_windows_1252_with_a_byte_it_leaves_undefined_reads_on(tmp_path):
    """0x81, 0x8D, 0x8F, 0x90 and 0x9D mean nothing in windows-1252: the parser stopped at
    the first and lost every record after it. It is U+FFFD, as the text readers decode it."""
    body = _late_listings(b"windows-1252", b"Citro\xebn \x81 \x9d", before=3)
    path = tmp_path / "feed.xml"
    path.write_bytes(body)
    rows = rows_of(path)
    assert len(rows) == 5 and not any(isinstance(r, Unreadable) for r in rows)
    assert rows[3]["description"] == "Citro\u00ebn \ufffd \ufffd"


def test_xml_declaring_us_ascii_over_single_byte_text_is_read_as_windows_1252(tmp_path):
    """A feed saying US-ASCII whose bytes beyond ASCII are not UTF-8 stopped the parser at
    the first; they are decoded as windows-1252, as the text readers decode such bytes, and
    the run's report says so."""
    word = "Citro\u00ebn \u00c1gil \u20ac"
    path = tmp_path / "feed.xml"
    path.write_bytes(_late_listings(b"US-ASCII", word.encode("cp1252")))
    info: dict = {}
    rows = [r for _, r in read(path, info=info)]
    assert len(rows) == 302 and not any(isinstance(r, Unreadable) for r in rows)
    assert [r["description"] for r in rows[-2:]] == [word, "after"]
    assert info["encoding"] == "cp1252" and info["declared_encoding"] == "US-ASCII"


def test_xml_with_a_utf8_bom_declaring_windows_1252_over_windows_1252_text_reads(tmp_path):
    """A UTF-8 BOM, a windows-1252 declaration and windows-1252 text: libxml2 refused the
    mismatch outright. The BOM says UTF-8; the single bytes are decoded as windows-1252,
    as in any UTF-8 feed."""
    word = "Citro\u00ebn \u20ac"
    path = tmp_path / "feed.xml"
    path.write_bytes(b"\xef\xbb\xbf" + _listings(
        word.encode("cp1252"), b'<?xml version="1.0" encoding="windows-1252"?>'))
    assert [r["description"] for r in rows_of(path)] == ["plain", word, "caf\u00e9"]


class _Pieces(io.RawIOBase):
    """A raw stream handing back its pieces one read at a time, as a socket or a
    decompressor hands back bytes in lumps of its own."""

    def __init__(self, pieces: list[bytes]):
        self._pieces = [p for p in pieces if p]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self._pieces:
            return 0
        piece = self._pieces.pop(0)
        n = min(len(buffer), len(piece))
        buffer[:n] = piece[:n]
        if n < len(piece):
            self._pieces.insert(0, piece[n:])
        return n


@pytest.mark.parametrize("written", ["utf-8", "cp1252"])
def test_xml_declaring_windows_1252_is_told_apart_wherever_reads_cut_its_text(written):
    """The first byte beyond ASCII may end a read (the rest of its character in the next),
    or be a read of its own, and a character may be cut anywhere after it: UTF-8 or
    windows-1252, each is read whole, as what it is."""
    from ingest import streams, xml_reader

    word = "Citro\u00ebn \u00c1 \u0160koda \u20ac \u201cA\u201d"
    body = _listings(word.encode(), b'<?xml version="1.0" encoding="windows-1252"?>'
                     ).decode().encode(written)
    start = body.index(b"Citro") + 5
    end = body.index(b"</description>", start)
    cuts = [[body[:cut], body[cut:]] for cut in range(start - 1, end + 1)]
    cuts.append([body[:start - 1], *(bytes([b]) for b in body[start - 1:end]), body[end:]])
    for pieces in cuts:
        binary = io.BufferedReader(_Pieces(pieces), streams.CHUNK_BYTES)
        info: dict = {}
        rows = [r for _, r in xml_reader.read_xml(binary, info)]
        assert [r["description"] for r in rows] == ["plain", word, "caf\u00e9"], pieces
        assert info.get("encoding") == ("utf-8" if written == "utf-8" else None), pieces


def test_xml_in_a_stateful_encoding_is_left_to_the_parser(tmp_path):
    """ISO-2022-JP shifts with ESC (a control XML forbids in text, but here part of the
    encoding): its bytes are not cleaned, and it reads as before."""
    text = _listings("\u65e5\u672c".encode(),
                     b'<?xml version="1.0" encoding="ISO-2022-JP"?>').decode()
    path = tmp_path / "feed.xml"
    path.write_bytes(text.replace("caf\u00e9", "\u6771\u4eac").encode("iso2022_jp"))
    rows = rows_of(path)
    assert [r["description"] for r in rows] == ["plain", "\u65e5\u672c", "\u6771\u4eac"]


# -- compression and size limits ---------------------------------------------------------------

def test_gzip_and_zip_are_read_transparently(tmp_path):
    source = FEEDS / "harbor-city-auto.csv"
    expected = rows_of(source)
    gz = tmp_path / "feed.csv.gz"
    gz.write_bytes(gzip.compress(source.read_bytes()))
    disguised = tmp_path / "download.bin"  # format and compression from the content
    disguised.write_bytes(gzip.compress(source.read_bytes()))
    zipped = tmp_path / "feed.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("__MACOSX/._inventory.csv", b"junk")
        zf.writestr("export/inventory.csv", source.read_bytes())
    for path in (gz, disguised, zipped):
        info: dict = {}
        assert [r for _, r in read(path, info=info)] == expected, path
        assert info["format"] == "csv"


def test_zip_with_several_feeds_is_refused(tmp_path):
    zipped = tmp_path / "feed.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("a.csv", "VIN\n1\n")
        zf.writestr("b.csv", "VIN\n2\n")
    with pytest.raises(Permanent, match="several files"):
        read(zipped)


def test_gzip_bomb_stops_at_the_decompressed_limit(tmp_path, limits):
    limits(feed_max_bytes=1_000_000)
    bomb = tmp_path / "bomb.csv.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as out:
        out.write(b"VIN,Make\n")
        for _ in range(30):
            out.write(b"0" * 1_000_000)
    assert bomb.stat().st_size < 100_000
    with pytest.raises(FeedTooLarge, match="larger than 1,000,000 bytes"):
        read(bomb)


def test_zip_bomb_is_refused_from_its_declared_size_and_its_real_size(tmp_path, limits):
    limits(feed_max_bytes=1_000_000)
    zipped = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("inventory.csv", b"VIN\n" + b"1" * 5_000_000)
    with pytest.raises(FeedTooLarge):
        read(zipped)


def test_unknown_extension_is_sniffed(tmp_path):
    for body, fmt in ((b'[{"vin": "A"}]', "json"), (b'{"vin": "A"}\n{"vin": "B"}\n', "jsonl"),
                      (b"<listings><listing><vin>A</vin></listing></listings>", "xml"),
                      (b"VIN,Make\nA,Kia\n", "csv")):
        path = tmp_path / "feed.dat"
        path.write_bytes(body)
        info: dict = {}
        rows = [r for _, r in read(path, info=info)]
        assert info["format"] == fmt and rows[0]["vin" if fmt != "csv" else "VIN"] == "A"


def test_unsupported_format_is_a_clear_error(tmp_path):
    path = tmp_path / "feed.csv"
    path.write_text("VIN\n1\n")
    with pytest.raises(Permanent, match="not supported"):
        read(path, "xlsx")


def test_memory_stays_flat_over_a_large_streamed_feed(tmp_path):
    """A 10 MB JSON array is read with a small, bounded buffer (no json.load of the file)."""
    path = tmp_path / "big.json"
    record = json.dumps({"vin": "X" * 17, "description": "y" * 900})
    with path.open("w") as out:
        out.write("[" + ",".join([record] * 10_000) + "]")
    import tracemalloc

    tracemalloc.start()
    count = sum(1 for _ in readers.read(path))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 10_000
    assert peak < 3_000_000, f"peak {peak:,} bytes"


# -- misdiagnosed input (found by review) --------------------------------------------------------

def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


XLSX = _zip({"[Content_Types].xml": b"<Types/>", "_rels/.rels": b"<Relationships/>",
             "xl/workbook.xml": b"<workbook/>", "xl/worksheets/sheet1.xml": b"<worksheet/>",
             "xl/sharedStrings.xml": b"<sst/>"})


@pytest.mark.parametrize("name, body, what", [
    ("stock.xlsx", XLSX, "an Excel workbook"),
    ("stock.csv", XLSX, "an Excel workbook"),  # named as the feed it should have been
    ("stock.ods", _zip({"mimetype": b"application/vnd.oasis.opendocument.spreadsheet",
                        "content.xml": b"<x/>", "styles.xml": b"<x/>"}), "a spreadsheet"),
    ("stock.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(range(256)) * 20,
     "an Excel workbook"),
    ("stock.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + bytes(range(256)) * 20, "a PDF"),
    ("feed.zip", _zip({"readme.pdf": b"%PDF-1.7\n" + bytes(range(256)) * 4}), "a PDF"),
    ("feed.zip", _zip({"photo.jpg": b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4}),
     "an image"),
    ("feed.csv", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "an image"),
])
def test_a_spreadsheet_document_or_image_sent_as_the_feed_is_named(tmp_path, name, body,
                                                                    what):
    """Read as CSV, an Excel file or a PDF became rows of binary junk (or 'holds several
    files' for an .xlsx, which is a zip): the error now says what the file is, and how to
    send the feed."""
    path = tmp_path / name
    path.write_bytes(body)
    with pytest.raises(Permanent, match=what) as caught:
        read(path)
    assert caught.value.hint


@pytest.mark.parametrize("name", ["feed.xml", "feed.csv", "feed"])
@pytest.mark.parametrize("start", [b"\n<!DOCTYPE html>\n<html>",
                                   b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html '
                                   b'PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "x">\n<html>'],
                         ids=["html", "xhtml"])
def test_an_html_page_is_called_one_not_an_xml_doctype(tmp_path, name, start):
    path = tmp_path / name
    path.write_bytes(start + b"<head><title>Sign in</title></head>"
                     b"<body><form>...</form></body></html>\n")
    with pytest.raises(Permanent, match="HTML web page") as err:
        read(path)
    assert "credentials" in err.value.hint


def test_json_named_file_holding_json_lines_is_read_as_json_lines(tmp_path):
    path = tmp_path / "feed.json"
    path.write_text('{"vin": "A"}\n{"vin": "B"}\n')
    info: dict = {}
    assert [r for _, r in read(path, info=info)] == [{"vin": "A"}, {"vin": "B"}]
    assert info["format"] == "jsonl"


def test_json_lines_named_file_holding_an_array_is_read_as_json(tmp_path):
    path = tmp_path / "feed.jsonl"
    path.write_text('[\n  {"vin": "A"},\n  {"vin": "B"}\n]\n')
    assert rows_of(path) == [{"vin": "A"}, {"vin": "B"}]


def test_an_empty_zip_is_called_one(tmp_path):
    path = tmp_path / "feed.zip"
    with zipfile.ZipFile(path, "w"):
        pass
    assert path.read_bytes()[:4] == b"PK\x05\x06"
    with pytest.raises(Permanent, match="holds no file"):
        read(path)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_only_a_dos_end_of_file_mark_at_the_very_end_is_dropped(size):
    """^Z and the blanks after it are dropped at the end of the file, wherever the chunks
    split them; a ^Z with anything but blanks after it is data, kept."""
    import io

    from ingest import streams

    def through(data: bytes) -> bytes:
        inner = io.BufferedReader(io.BytesIO(data), buffer_size=size)
        return io.BufferedReader(streams.NulFree(inner), size).read()

    assert through(b"a,b\r\n1,2\r\n\x1a") == b"a,b\r\n1,2\r\n"
    assert through(b"a,b\r\n1,2\r\n\x1a\x1a\r\n \n") == b"a,b\r\n1,2\r\n"
    assert through(b"a,b\r\n1,2\x1a") == b"a,b\r\n1,2"
    assert through(b"a,b\r\n1,\x1a\r\n2,3\r\n") == b"a,b\r\n1,\x1a\r\n2,3\r\n"
    assert through(b"a,b\r\n1,2\r\n\x1a \x00x") == b"a,b\r\n1,2\r\n\x1a x"
    assert through(b"\x1a") == b"" and through(b"") == b""


_UTF16 = {  # how a UTF-16 feed is written: codec, BOM
    "utf-16": ("utf-16", b""),  # Python's: a BOM, then the machine's order
    "le-bom": ("utf-16-le", b"\xff\xfe"), "be-bom": ("utf-16-be", b"\xfe\xff"),
    "le": ("utf-16-le", b""), "be": ("utf-16-be", b""),
}
_FEED_TEXT = {
    "csv": "VIN,Make,Price\r\n1HGCM82633A004352,Škoda,€ 18.500\r\n"
           '2T3P1RFV7PC338201,Citroën,"1,000"\r\n',
    "tsv": "VIN\tMake\tPrice\r\n1HGCM82633A004352\tŠkoda\t€ 18.500\r\n"
           "2T3P1RFV7PC338201\tCitroën\t1,000\r\n",
    "json": '[{"VIN": "1HGCM82633A004352", "Make": "Škoda", "Price": "€ 18.500"},\r\n'
            ' {"VIN": "2T3P1RFV7PC338201", "Make": "Citroën", "Price": "1,000"}]\r\n',
}


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("tail", ["", "\x1a", "\x1a\r\n", "\x1a\x1a\n \n", "glued\x1a"])
@pytest.mark.parametrize("written", list(_UTF16))
@pytest.mark.parametrize("fmt", list(_FEED_TEXT))
def test_a_utf16_feed_is_read_whole_with_or_without_bom_and_end_of_file_mark(
        tmp_path, fmt, written, tail, gz):
    """A UTF-16 feed ending in a DOS end-of-file mark (^Z) made every run partial: its ^Z
    was a last line short of fields, or text after the JSON list (UTF-8 and Windows-1252
    feeds had it dropped; UTF-16 never reached that code). And a UTF-16 feed without a
    BOM (Excel's 'Unicode text', a .NET export) was read as Windows-1252 with its NULs
    dropped: 'Škoda' became '`\\x01koda', '€' became '¬ ', a JSON feed's record a reject."""
    codec, bom = _UTF16[written]
    text = _FEED_TEXT[fmt]
    if tail.startswith("glued"):  # right after the last record, before its line break
        text, tail = text.rstrip("\r\n"), tail.removeprefix("glued")
    data = bom + (text + tail).encode(codec)
    path = tmp_path / f"feed.{fmt}{'.gz' if gz else ''}"
    path.write_bytes(gzip.compress(data) if gz else data)
    info: dict = {}
    rows = read(path, info=info)
    assert [r for _, r in rows] == [
        {"VIN": "1HGCM82633A004352", "Make": "Škoda", "Price": "€ 18.500"},
        {"VIN": "2T3P1RFV7PC338201", "Make": "Citroën", "Price": "1,000"}]
    assert info["encoding"].startswith("utf-16")


def test_a_dos_end_of_file_mark_inside_a_utf16_feed_is_data():
    """Only a ^Z that ends the file (maybe with blanks after it) is dropped, wherever the
    chunks split the bytes; anywhere else it is data, as in single-byte feeds."""
    from ingest import streams

    for codec in ("utf-16-le", "utf-16-be"):
        for size in (1, 2, 3, 7, 64):
            def through(text: str, codec=codec, size=size) -> str:
                inner = io.BufferedReader(io.BytesIO(text.encode(codec)), buffer_size=size)
                clean = io.BufferedReader(streams.Utf16EndFree(inner, codec), size)
                return clean.read().decode(codec)

            assert through("a,b\r\n1,2\r\n\x1a") == "a,b\r\n1,2\r\n"
            assert through("a,b\r\n1,2\r\n\x1a\x1a\r\n \n") == "a,b\r\n1,2\r\n"
            assert through("a,b\r\n1,2\x1a") == "a,b\r\n1,2"
            assert through("a,b\r\n1,\x1a\r\n2,3\r\n") == "a,b\r\n1,\x1a\r\n2,3\r\n"
            assert through("a,b\r\n1,2\r\n\x1a x") == "a,b\r\n1,2\r\n\x1a x"
            assert through("a,\u1a00\u201a\r\n") == "a,\u1a00\u201a\r\n"  # not ^Z units
            assert through("\x1a") == "" and through("") == ""


_UNNAMED = {
    "json": '[{"VIN": "1HGCM82633A004352", "Make": "Škoda"}]\r\n',
    "jsonl": '{"VIN": "1HGCM82633A004352", "Make": "Škoda"}\r\n'
             '{"VIN": "2T3P1RFV7PC338201", "Make": "Kia"}\r\n',
    "xml": '<?xml version="1.0" encoding="UTF-16"?>\r\n<rss><channel><item>'
           "<VIN>1HGCM82633A004352</VIN><Make>Škoda</Make></item></channel></rss>\r\n",
}


@pytest.mark.parametrize("tail", ["", "\x1a\r\n"], ids=["", "eof-mark"])
@pytest.mark.parametrize("written", ["utf-16", "be-bom", "le", "be"])
@pytest.mark.parametrize("fmt", list(_UNNAMED))
def test_a_utf16_feed_without_a_telling_name_is_sniffed_as_what_it_holds(tmp_path, fmt,
                                                                         written, tail):
    """A UTF-16 feed from a URL without a suffix: its format was sniffed from its raw bytes,
    where '[' or '<' follows a BOM or comes with NULs, so JSON and XML were read as CSV
    ("the feed's header cannot be read"). A UTF-16 XML feed ending in ^Z was cut short, one
    without a BOM read as UTF-8 with its NULs dropped ("Blank needed here")."""
    codec, bom = _UTF16[written]
    path = tmp_path / "export"
    path.write_bytes(bom + (_UNNAMED[fmt] + tail).encode(codec))
    info: dict = {}
    rows = [r for _, r in read(path, info=info)]
    assert info["format"] == fmt
    assert rows[0] == {"VIN": "1HGCM82633A004352", "Make": "Škoda"}
    assert len(rows) == (2 if fmt == "jsonl" else 1)


@pytest.mark.parametrize("written", ["utf-16", "be-bom", "le", "be"])
def test_a_utf16_web_page_is_refused_as_one(tmp_path, written):
    codec, bom = _UTF16[written]
    path = tmp_path / "export"
    path.write_bytes(bom + "<!DOCTYPE html><html><body>Sign in</body></html>".encode(codec))
    with pytest.raises(Permanent, match="HTML web page"):
        read(path)
