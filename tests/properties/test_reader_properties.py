"""Property-based runs of every feed reader on generated input: whatever the bytes, a reader
yields typed rows or raises a typed forecourt error; well-formed input comes back exactly."""

from __future__ import annotations

import csv
import gzip
import io
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crawler.errors import ForecourtError
from ingest import mapping as mapping_mod
from ingest import readers
from ingest.rows import Unreadable

SETTINGS = settings(max_examples=80, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
FORMATS = [None, "csv", "tsv", "json", "jsonl", "xml"]

# Text that looks like feeds: delimiters, quotes, brackets, tags, escapes, odd characters.
feedish = st.lists(st.sampled_from(
    list(',;\t|"\'\n\r{}[]<>:/=&#\\ ') + list("abcVIN0123456789") +
    ["\x00", "\u00e9", "\u2013", "\ufeff", "\ud7ff", "\U0001f697", "<!DOCTYPE x>", "&lol;",
     "<item>", "</item>", '{"VIN": ', "\\u0000", "null", "true", "1e999"]),
    max_size=200).map("".join)


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _read_all(body: bytes, fmt: str | None, name: str = "feed") -> list:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(body)
        try:
            rows = list(readers.read(path, fmt))
        except ForecourtError:
            return []  # a typed refusal (unsafe XML, unreadable header...) is an answer
    last = 0
    for number, row in rows:
        assert isinstance(number, int) and number > last
        last = number
        assert isinstance(row, (dict, Unreadable))
        if isinstance(row, Unreadable):
            assert isinstance(row.reason, str) and row.reason
            assert row.raw is None or isinstance(row.raw, str)
        for s in _strings(row if isinstance(row, dict) else [row.raw or ""]):
            assert "\x00" not in s  # PostgreSQL could not store it
    return rows


@SETTINGS
@given(body=st.binary(max_size=2000), fmt=st.sampled_from(FORMATS),
       compress=st.booleans())
def test_any_bytes_give_typed_rows_or_a_typed_error(body, fmt, compress):
    if compress:
        body = gzip.compress(body)
    _read_all(body, fmt, "feed.gz" if compress else "feed")


@SETTINGS
@given(text=feedish, fmt=st.sampled_from(FORMATS),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]))
def test_feed_like_text_in_any_encoding_gives_typed_rows(text, fmt, encoding):
    body = text.encode(encoding, errors="replace")
    rows = _read_all(body, fmt)
    if fmt in ("csv", "tsv"):
        assert all(isinstance(v, str) for _, r in rows if isinstance(r, dict)
                   for v in r.values())


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_",
                min_size=1, max_size=12)
cells = st.text(alphabet=st.characters(blacklist_characters="\x00",
                                       blacklist_categories=("Cs",)), max_size=30)


@SETTINGS
@given(header=st.lists(names, min_size=1, max_size=6, unique=True),
       data=st.data(), delimiter=st.sampled_from([",", "\t", ";", "|"]))
def test_well_formed_csv_comes_back_exactly(header, data, delimiter):
    rows = data.draw(st.lists(st.lists(cells, min_size=len(header), max_size=len(header)),
                              max_size=8))
    rows = [r for r in rows if any(c.strip() for c in r) or len(r) > 1]  # blank lines skip
    out = io.StringIO(newline="")
    csv.writer(out, delimiter=delimiter, quoting=csv.QUOTE_ALL).writerows([header, *rows])
    got = _read_all(out.getvalue().encode(), "tsv" if delimiter == "\t" else "csv")
    assert [r for _, r in got] == [dict(zip(header, r, strict=True)) for r in rows]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                          allow_infinity=False) | cells,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(names, children,
                                                                      max_size=3),
    max_leaves=10)
records = st.lists(st.dictionaries(names, json_values, max_size=5), max_size=6)


@SETTINGS
@given(items=records, wrapped=st.booleans(), cut=st.integers(min_value=0, max_value=400))
def test_json_and_jsonl_come_back_exactly_and_truncation_is_reported(items, wrapped, cut):
    doc = json.dumps({"vehicles": items} if wrapped else items).encode()
    assert [r for _, r in _read_all(doc, "json")] == items
    lines = b"\n".join(json.dumps(i).encode() for i in items)
    assert [r for _, r in _read_all(lines, "jsonl")] == items
    if cut < len(doc) - 1:
        rows = _read_all(doc[:cut], "json")
        complete = [r for _, r in rows if isinstance(r, dict)]
        assert complete == items[:len(complete)]  # never a wrong record
        if rows:
            assert isinstance(rows[-1][1], Unreadable) and rows[-1][1].fatal


@SETTINGS
@given(row=st.dictionaries(st.sampled_from(
    ["VIN", "vin", "Stock", "Year", "Make", "Model", "Miles", "SellingPrice", "price",
     "mileage.value", "image[0].url", "ImageList", "title", "x"]) | names,
    json_values, max_size=8))
def test_column_mapping_turns_any_row_into_an_item(row):
    columns = list(row)
    _, spec = mapping_mod.choose(columns)
    item = mapping_mod.Plan(spec, columns).item(row, "row 1")
    assert item.source == "row 1" and item.raw == row
