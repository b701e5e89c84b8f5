"""COPY's text format for vehicles: the staging columns in order and each vehicle's line.

A vehicle goes to COPY as a line of COPY's text format, made in three parts (see
`copy_line`): its content (`copy_body`), its scores and where it came from; the content
hash is taken over the first two as they are sent. A line costs a few string joins, where
binary COPY's per-value adaptation (on the writer thread, holding the interpreter lock
the feed loop needs) cost about as much as the rest of the store stage. Also the array
literals that statements take as one text parameter (`array_literal`).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from crawler.models import Vehicle

# (column, PostgreSQL type) in COPY order: the content (copy_body), the scores
# (copy_scores), where the vehicle came from (copy_line), its content hash.
BODY_COLUMNS: list[tuple[str, str]] = [
    ("vin", "text"), ("stock_number", "text"), ("condition", "text"), ("year", "smallint"),
    ("make", "text"), ("model", "text"), ("trim", "text"), ("body_style", "text"),
    ("exterior_color", "text"), ("interior_color", "text"), ("transmission", "text"),
    ("drivetrain", "text"), ("fuel_type", "text"), ("engine", "text"), ("mileage", "integer"),
    ("price", "numeric"), ("msrp", "numeric"), ("currency", "text"), ("availability", "text"),
    ("url", "text"), ("image_urls", "text[]"), ("description", "text"),
    ("vin_decoded", "jsonb"), ("vin_placeholder", "boolean"),
]
SCORE_COLUMNS: list[tuple[str, str]] = [
    ("quality_score", "smallint"), ("quality_flags", "text[]"), ("rules_version", "smallint")]
STAGE_COLUMNS: list[tuple[str, str]] = [
    *BODY_COLUMNS, *SCORE_COLUMNS, ("source", "text"), ("source_hash", "text"),
    ("content_hash", "text")]

_NULL = "\\N"
_BODY_TABS = len(BODY_COLUMNS) - 1


def _escaped(value: str) -> str:
    """A value as COPY's text format takes it."""
    return (value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
            .replace("\t", "\\t"))


def _line(values: list[str | None], tabs: int) -> str:
    """Values (None for NULL) as tab-separated COPY text. Almost no value holds a backslash,
    tab or line break (the normalizers fold whitespace): one count over the joined line
    finds those that do, and only their lines are escaped value by value."""
    line = "\t".join([_NULL if v is None else v for v in values])
    if (line.count("\\") != values.count(None) or line.count("\t") != tabs
            or "\n" in line or "\r" in line):
        line = "\t".join([_NULL if v is None else _escaped(v) for v in values])
    return line


def _element(value: str) -> str:
    """An array element quoted, its quotes and backslashes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _array(values: list[str]) -> str:
    """A text[] literal: every element quoted, quotes and backslashes escaped (one check over
    the joined elements finds the rare lists that need escaping)."""
    if not values:
        return "{}"
    inner = '","'.join(values)
    if '"' in inner or "\\" in inner:
        return "{" + ",".join(map(_element, values)) + "}"
    return '{"' + inner + '"}'


def array_literal(values: Collection[str | None]) -> str:
    """An array literal of strings (None for NULL), passed as one text parameter and cast to
    an array type in the statement. psycopg adapts a list's elements one by one in Python
    (~1.5 us each, on the thread that runs the statement, holding the interpreter lock);
    the server parses a literal far faster. For a batch's look-ups and 'added' events."""
    values = list(values)
    if None not in values:
        return _array(values)
    return "{" + ",".join("NULL" if v is None else _element(v) for v in values) + "}"


def _json(value: Any, json_of: dict[int, str] | None) -> str:
    """JSON of a vin_decoded dict, with sorted keys; `json_of` keeps what was made by id
    (the VIN stage shares one dict among the vehicles with the same decode)."""
    text = json_of.get(id(value)) if json_of is not None else None
    if text is None:
        text = json.dumps(value, sort_keys=True, default=str)
        if json_of is not None:
            json_of[id(value)] = text
    return text


def copy_body(v: Vehicle, json_of: dict[int, str] | None = None) -> str:
    """The COPY text of a vehicle's content (BODY_COLUMNS): everything a store compares but
    its scores. `json_of`: see _json (its ids are only valid while the vehicles live)."""
    d = v.__dict__  # the field values themselves: model_dump() costs ~10x more per row
    year, mileage, price, msrp, decoded = (d["year"], d["mileage"], d["price"], d["msrp"],
                                           d["vin_decoded"])
    return _line([
        d["vin"], d["stock_number"], d["condition"], None if year is None else str(year),
        d["make"], d["model"], d["trim"], d["body_style"], d["exterior_color"],
        d["interior_color"], d["transmission"], d["drivetrain"], d["fuel_type"], d["engine"],
        None if mileage is None else str(mileage), None if price is None else str(price),
        None if msrp is None else str(msrp), d["currency"], d["availability"], d["url"],
        _array(d["image_urls"]), d["description"],
        None if decoded is None else _json(decoded, json_of),
        "t" if d["vin_placeholder"] else "f"], _BODY_TABS)


def copy_scores(v: Vehicle) -> str:
    """The COPY text of a vehicle's scores (SCORE_COLUMNS)."""
    d = v.__dict__
    score, version = d["quality_score"], d["rules_version"]
    return _line([None if score is None else str(score), _array(d["quality_flags"]),
                  None if version is None else str(version)], 2)


def copy_line(body: str, scores: str, v: Vehicle, content_hash: str) -> str:
    """A vehicle's whole COPY line (STAGE_COLUMNS) from its parts."""
    return f"{body}\t{scores}\t{_line([v.source, v.source_hash], 1)}\t{content_hash}"
