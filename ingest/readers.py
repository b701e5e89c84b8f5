"""Streaming feed readers: each yields (row number, row dict) and holds one row at a time."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

from crawler.errors import Permanent

Row = tuple[int, dict]


def detect_format(path: Path, declared: str | None = None) -> str:
    if declared:
        return declared.lower()
    name = path.name.lower().removesuffix(".gz")
    for suffix, fmt in ((".csv", "csv"), (".tsv", "tsv"), (".jsonl", "jsonl"),
                        (".ndjson", "jsonl"), (".json", "json"), (".xml", "xml")):
        if name.endswith(suffix):
            return fmt
    raise Permanent(f"cannot tell the format of {path.name}",
                    hint="pass --format csv|tsv|json|jsonl|xml")


def read_csv(stream: io.TextIOBase, delimiter: str | None = None) -> Iterator[Row]:
    head = stream.read(64 * 1024)
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(head.split("\n", 1)[0], delimiters=",\t;|").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.DictReader(_chain(head, stream), delimiter=delimiter)
    for number, row in enumerate(reader, start=1):
        yield number, {(k or "").strip(): v for k, v in row.items() if k is not None}


def _chain(head: str, rest: io.TextIOBase) -> Iterator[str]:
    yield from io.StringIO(head + rest.readline())
    yield from rest


def read_json(stream: io.TextIOBase) -> Iterator[Row]:
    data = json.load(stream)
    if isinstance(data, dict):
        for key in ("vehicles", "items", "inventory", "data", "results", "listings"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if not isinstance(data, list):
        raise Permanent("JSON feed is not a list of vehicles")
    for number, row in enumerate(data, start=1):
        yield number, row if isinstance(row, dict) else {"value": row}


def read_jsonl(stream: io.TextIOBase) -> Iterator[Row]:
    for number, line in enumerate(stream, start=1):
        line = line.strip()
        if line:
            try:
                yield number, json.loads(line)
            except ValueError as exc:
                yield number, {"__error__": f"line {number} is not JSON: {exc}"}


def open_text(path: Path) -> io.TextIOBase:
    raw = path.open("rb")
    if path.name.endswith(".gz"):
        import gzip

        raw = gzip.GzipFile(fileobj=raw)
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def read(path: Path, fmt: str | None = None) -> Iterator[Row]:
    fmt = detect_format(path, fmt)
    with open_text(path) as stream:
        if fmt in ("csv", "tsv"):
            yield from read_csv(stream, "\t" if fmt == "tsv" else None)
        elif fmt == "json":
            yield from read_json(stream)
        elif fmt == "jsonl":
            yield from read_jsonl(stream)
        else:
            raise Permanent(f"feed format {fmt!r} is not supported",
                            hint="use csv, tsv, json or jsonl")
