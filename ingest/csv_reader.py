"""CSV and TSV feeds, read record by record: the delimiter guessed from the header line
(unless given), quoted fields with embedded newlines, a line too long or a record with the
wrong number of fields unreadable, and records the dealer's stored inventory came from
recognised by their bytes without being parsed (read_csv's `unchanged`).
"""

from __future__ import annotations

import csv
import io
import itertools
import operator
from collections.abc import Callable, Iterator

from crawler.config import get_settings
from crawler.errors import Permanent
from ingest import streams
from ingest.rows import CUT, Row, Unreadable, listed_vin


def _delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _unique(header: list[str]) -> tuple[list[str], list[str]]:
    """The header with repeated names made unique ('Price', 'Price (2)'), so that the first
    column of a name is the one mapped and a repeat is kept (and reported) rather than
    overwriting it; and the names that repeat. A repeat never takes a name the header
    itself uses (a real 'Price (2)' column keeps its name). Names differing in case are
    different columns (a mapping reads the first of them)."""
    taken = set(header)
    seen: set[str] = set()
    out, repeated = [], []
    for name in header:
        if name in seen:
            if name not in repeated:
                repeated.append(name)
            n = 2
            while f"{name} ({n})" in taken:
                n += 1
            name = f"{name} ({n})"
            taken.add(name)
        seen.add(name)
        out.append(name)
    return out, repeated


class CsvRow(dict):
    """A CSV row: its fields by header name; `text`, the record as it stands in the file
    (without its line terminator); `raw`, its bytes (those read, or for a text stream the
    text as UTF-8), which the feed's fast path hashes."""

    __slots__ = ("text", "raw")


def read_csv(stream: io.TextIOBase | io.BufferedIOBase, delimiter: str | None = None,
             unchanged: Callable[[str | bytes], bool] | None = None,
             info: dict | None = None, encoding: tuple[str, str] | None = None
             ) -> Iterator[Row]:
    """Rows of a delimited file as `CsvRow`s keyed by its header (any delimiter, quoted
    fields with embedded newlines). Rows with more or fewer fields than the header are
    unreadable. `stream` is text, or bytes whose lines are decoded one by one with
    `encoding` (codec, error handler): see streams.byte_lines.

    `unchanged(line)`, when given, is asked about each record's first line (its bytes as
    read, or a text stream's line encoded as UTF-8, without its line terminator) before
    anything decodes or parses it; a record it
    recognises (see ingest.feed: the line is, byte for byte, a record the dealer's stored
    inventory came from, so it is a whole record) is yielded as (number, None) without
    being parsed. Every other record is parsed exactly, however many lines it spans.
    `info`, when given, receives the delimiter."""
    limit = get_settings().feed_max_record_chars
    csv.field_size_limit(limit)
    decode = None if encoding is None else operator.methodcaller("decode", *encoding)
    eol = "\r\n" if decode is None else b"\r\n"
    if decode is None:
        first, lines = stream.readline(limit), iter(stream)
    else:
        # a line of more than `limit` characters is a reject (or, first, no header) without
        # being held whole: UTF-8 takes at most 4 bytes a character
        lines = streams.lines(stream, longest=4 * limit + 4)
        first = next(lines, b"")
        if type(first) is streams.TooLong:
            raise Permanent(f"the feed's first line is longer than {limit:,} characters: "
                            "it is not a delimited file",
                            hint="check the feed's format (--format) and that it is the feed")
    if delimiter is None:
        delimiter = _delimiter(first if decode is None else decode(first))
    if info is not None:
        info["delimiter"] = delimiter
    lines = itertools.chain((first,), lines)
    ahead: list = []  # the line the loop read first, for the parser to take
    taken: list = []  # the lines of the record being parsed, as read
    texts: list[str] = []  # the same, decoded

    def source() -> Iterator[str]:
        while True:
            line = ahead.pop() if ahead else next(lines, None)
            if line is None:
                return
            taken.append(line)
            text = line if decode is None else decode(line)
            texts.append(text)
            yield text

    reader = csv.reader(source(), delimiter=delimiter, strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return
    except csv.Error as exc:
        raise Permanent(f"the feed's header cannot be read: {exc}") from exc
    if info is not None and any(header):  # a feed without rows says which it lacks
        info["header_columns"] = len(header)
    # a blank header cell (an export's trailing empty cells) is named by its position
    header, repeated = _unique([h or f"(column {i})" for i, h in enumerate(header, 1)])
    if info is not None and repeated:
        info["duplicate_columns"] = repeated
    width = len(header)
    number, line_no = 0, len(taken)
    ends = ("\n", "\r") if decode is None else (b"\n", b"\r")
    too_long = None  # a TooLong line, as text, until its terminator shows it ended

    def overlong(text: str, cut: bool) -> Unreadable:
        return Unreadable(f"line {line_no}: longer than {limit:,} characters"
                          + (CUT if cut else ""), raw=text[:10_000], fatal=cut,
                          vin=listed_vin(text))

    for line in lines:
        if type(line) is streams.TooLong:
            number += 1
            line_no += 1
            too_long = decode(line)
            continue
        if too_long is not None:
            yield number, overlong(too_long, cut=False)
            too_long = None
            if line in (b"\n", b"\r\n", b"\r"):  # its own terminator
                continue
        if unchanged is not None and unchanged(
                line.rstrip(eol) if decode is not None else line.rstrip(eol).encode()):
            number += 1
            line_no += 1
            yield number, None
            continue
        ahead.append(line)
        taken.clear()
        texts.clear()
        start = line_no + 1
        try:
            values = next(reader)
        except csv.Error as exc:
            line_no += len(taken)
            number += 1
            cut = "unexpected end of data" in str(exc) or not taken[-1].endswith(ends)
            text = "".join(texts)
            yield number, Unreadable(f"line {start}: {exc}" + (CUT if cut else ""),
                                     raw=text[:10_000], fatal=cut, vin=listed_vin(text))
            if cut:
                return
            continue
        line_no += len(taken)
        if not values or (len(values) == 1 and not values[0].strip()):
            continue  # blank line
        number += 1
        if len(values) != width:
            # the file's last line, unterminated and short of fields: the file was cut
            cut = not taken[-1].endswith(ends)
            text = delimiter.join(values)
            yield number, Unreadable(
                f"line {start}: {len(values)} fields where the header has {width}"
                + (CUT if cut else ""), raw=text[:10_000], fatal=cut, vin=listed_vin(text))
            continue
        row = CsvRow(zip(header, values, strict=False))
        if decode is None:  # a text stream's
            row.text = (line if len(taken) == 1 else "".join(taken)).rstrip(eol)
            row.raw = row.text.encode()
        elif len(taken) == 1:
            row.raw, row.text = line.rstrip(eol), texts[0].rstrip("\r\n")
        else:
            row.raw, row.text = b"".join(taken).rstrip(eol), "".join(texts).rstrip("\r\n")
        yield number, row
    if too_long is not None:  # the file ends inside its last line
        yield number, overlong(too_long, cut=True)
