"""Streaming feed readers: each yields (row number, row) and holds one row at a time.

A row is a dict of the source's own fields, or `Unreadable` (why, the raw text when there is
some) for a row that could not be read: bad CSV quoting, a JSON record that does not parse.
Unreadable rows become rejects and the run goes on; `Unreadable.fatal` means reading could
not continue (a truncated file), so the run is incomplete and removes nothing.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from crawler.config import get_settings
from crawler.errors import Permanent
from ingest import streams

FORMATS = ("csv", "tsv", "json", "jsonl", "xml")


@dataclass(frozen=True)
class Unreadable:
    reason: str
    raw: str | None = None
    fatal: bool = False
    # the one VIN its text names, if any (see listed_vin)
    vin: str | None = None


# 17 letters and digits, both, standing alone: a VIN (or a placeholder one) as text holds it
_VIN_TOKEN = re.compile(r"(?<![A-Za-z0-9])(?=[A-Za-z]*[0-9])(?=[0-9]*[A-Za-z])"
                        r"[A-Za-z0-9]{17}(?![A-Za-z0-9])")


def listed_vin(text: str | None) -> str | None:
    """The VIN a row that cannot be read names, when its text names exactly one (in its VIN
    column and, say, its page URL): that car is still on the dealer's list, so the run
    counts it as seen instead of removing it. None when it names none, or several (a bad
    quote that swallowed the next rows)."""
    if not text:
        return None
    found = {m.group().upper() for m in _VIN_TOKEN.finditer(text)}
    return found.pop() if len(found) == 1 else None


Row = tuple[int, "dict | Unreadable | None"]  # None: see read_csv's `unchanged`


def format_from_name(name: str) -> str | None:
    low = name.lower()
    for suffix, fmt in ((".csv", "csv"), (".tsv", "tsv"), (".tab", "tsv"), (".jsonl", "jsonl"),
                        (".ndjson", "jsonl"), (".json", "json"), (".xml", "xml")):
        if low.endswith(suffix):
            return fmt
    return None


def sniff_format(head: bytes) -> str:
    """Guess a format from the first bytes when the name does not say."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<"):
        return "xml"
    if text.startswith(b"["):
        return "json"
    if text.startswith(b"{"):
        first, _, rest = text.partition(b"\n")
        return "jsonl" if first.rstrip().endswith(b"}") and rest.lstrip().startswith(b"{") \
            else "json"
    return "csv"


_HTML = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*\?>\s*)?(?:<!--.*?-->\s*)*"
                   rb"<(?:!doctype\s+html|html[\s>])", re.I | re.S)


def refuse_html(head: bytes) -> None:
    """A web page where a feed was expected (a login, error or parking page) is said to be
    one, not read as XML with a DOCTYPE or as a CSV of markup."""
    if _HTML.match(head[:4096]):
        raise Permanent("the feed is an HTML web page, not a feed (a login or error page?)",
                        hint="check the feed URL and any credentials it needs")


_SPREADSHEET_HINT = "export the sheet as CSV (UTF-8) and send that"
_NOT_A_FEED_HINT = "send the feed itself: CSV, TSV, XML, JSON or JSON Lines"
# The first bytes of files sent where a feed was expected, and what they are.
_DOCUMENTS = ((b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
               "an Excel workbook (or another old Microsoft Office file)", _SPREADSHEET_HINT),
              (b"%PDF-", "a PDF document", _NOT_A_FEED_HINT),
              (b"\xff\xd8\xff", "an image (JPEG)", _NOT_A_FEED_HINT),
              (b"\x89PNG\r\n\x1a\n", "an image (PNG)", _NOT_A_FEED_HINT),
              (b"GIF87a", "an image (GIF)", _NOT_A_FEED_HINT),
              (b"GIF89a", "an image (GIF)", _NOT_A_FEED_HINT))


def refuse_document(head: bytes, name: str) -> None:
    """An old Excel file, a PDF or an image where a feed was expected is said to be one,
    not read as a CSV of binary junk (rows of rejects and a header of mojibake)."""
    for magic, what, hint in _DOCUMENTS:
        if head.startswith(magic):
            raise Permanent(f"{name} is {what}, not a feed", hint=hint)


def detect_format(path: Path, declared: str | None = None) -> str:
    if declared:
        fmt = declared.lower()
        if fmt not in FORMATS:
            raise Permanent(f"feed format {declared!r} is not supported",
                            hint="use --format " + "|".join(FORMATS))
        return fmt
    return format_from_name(path.name.removesuffix(".gz")) or "auto"


# -- CSV / TSV -------------------------------------------------------------------------------

def _delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


CUT = ", and the file ends there without a line break: it looks cut short"


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


# -- JSON ------------------------------------------------------------------------------------

_WRAPPER_KEYS = ("vehicles", "items", "inventory", "data", "results", "listings", "records")
_CHUNK = 256 * 1024


class _Buffer:
    """Text read in chunks with a cursor; consumed text is dropped as the cursor moves."""

    def __init__(self, stream: io.TextIOBase):
        self.stream, self.text, self.pos, self.eof = stream, "", 0, False

    def more(self) -> bool:
        if self.eof:
            return False
        chunk = self.stream.read(_CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.text += chunk
        return True

    def compact(self) -> None:
        """Forget consumed text (only between records, so positions stay valid within one)."""
        if self.pos > _CHUNK:
            self.text, self.pos = self.text[self.pos:], 0

    def skip_ws(self) -> str:
        """The next non-blank character ('' at the end), cursor on it."""
        while True:
            n = len(self.text)
            while self.pos < n and self.text[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < n:
                return self.text[self.pos]
            if not self.more():
                return ""


_DECODER = json.JSONDecoder()


_TOO_DEEP = "it is nested too deeply to be a vehicle"


class CutOff(ValueError):
    """The JSON text ends inside a value."""


def _decode_value(buf: _Buffer, limit: int) -> object:
    """Decode the JSON value at the cursor, reading more as needed. Raises ValueError."""
    buf.skip_ws()
    while True:
        try:
            value, end = _DECODER.raw_decode(buf.text, buf.pos)
        except RecursionError as exc:
            raise ValueError(_TOO_DEEP) from exc
        except json.JSONDecodeError as exc:
            # an error before the end of what is buffered is a malformed record; at the end
            # (or in a string still open) more text may complete it
            at_end = exc.pos >= len(buf.text.rstrip()) - 16 or exc.msg.startswith(
                "Unterminated string")
            if not at_end:
                raise
            if len(buf.text) - buf.pos > limit:
                raise ValueError(f"a record is larger than {limit:,} characters") from exc
            if buf.more():
                continue
            raise CutOff(str(exc)) from exc
        # a number or literal cut by the chunk boundary must not be taken as complete
        if end == len(buf.text) and not buf.eof and buf.more():
            continue
        buf.pos = end
        return value


def read_json(stream: io.TextIOBase) -> Iterator[Row]:
    """Records of a JSON array (or an object wrapping one under a key such as "vehicles",
    or one bare vehicle object), decoded one at a time: memory holds one record, not the
    feed."""
    limit = get_settings().feed_max_record_chars
    buf = _Buffer(stream)
    first = buf.skip_ws()
    wrapped = first == "{"
    if wrapped:
        start = buf.pos  # nothing is compacted while the object's keys are walked
        try:
            entered = _enter_wrapped_array(buf, limit)
        except ValueError:  # cut off or malformed before its list began
            entered = False
        if not entered:
            single = _single_vehicle(buf, start, limit)
            if single is None:
                raise Permanent("JSON feed is an object without a list of vehicles",
                                hint='give an array, or an object with a "vehicles" list')
            yield 1, single
            return
    elif first == "[":
        buf.pos += 1
    else:
        raise Permanent("JSON feed is not a list of vehicles", hint="give a JSON array")
    number = 0
    while True:
        buf.compact()
        ch = buf.skip_ws()
        if ch == "," and number:
            buf.pos += 1
            ch = buf.skip_ws()
        if ch == "]":
            buf.pos += 1
            if not _ends_whole(buf, wrapped, limit):
                # a list closed early (a broken record's own list, say) or a second document
                yield number + 1, Unreadable(
                    "the JSON feed goes on after its list of vehicles ends: "
                    + repr(buf.text[buf.pos:buf.pos + 60]), raw=buf.text[buf.pos:buf.pos + 2000],
                    fatal=True)
            return
        if ch == "":
            yield number + 1, Unreadable("the JSON feed ends before its closing ]", fatal=True)
            return
        number += 1
        start = buf.pos
        try:
            value = _decode_value(buf, limit)
        except ValueError as exc:
            raw = buf.text[start:start + 2000]
            if isinstance(exc, CutOff):
                yield number, Unreadable(f"record {number} is cut off: {exc}", raw=raw,
                                         fatal=True)
                return
            # Its end is found by its brackets, or not at all (an unescaped quote turns its
            # strings inside out): guessing where a record starts could take its nested
            # objects for records, and the "]" of their list for the feed's end.
            skipped = _skip_record(buf, start, limit)
            yield number, Unreadable(f"record {number} is not JSON: {exc}", raw=raw,
                                     vin=listed_vin(buf.text[start:buf.pos] if skipped
                                                    else raw))
            if not skipped:
                yield number + 1, Unreadable("the JSON feed cannot be read past this point",
                                             fatal=True)
                return
            continue
        if buf.text.find("\\u0000", start, buf.pos) != -1:
            value = _no_nul(value)
        yield number, value if isinstance(value, dict) else Unreadable(
            f"record {number} is a {type(value).__name__}, not an object", raw=str(value)[:2000])


def _no_nul(value: object) -> object:
    """A decoded JSON value without NUL characters (a \\u0000 escape): PostgreSQL text and
    jsonb cannot hold them."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_no_nul(v) for v in value]
    if isinstance(value, dict):
        return {_no_nul(k): _no_nul(v) for k, v in value.items()}
    return value


_VEHICLE_KEYS = frozenset({"vin", "vehicle_id", "stock", "stock_number", "stocknumber", "id"})


def _single_vehicle(buf: _Buffer, start: int, limit: int) -> dict | None:
    """The whole object at `start` when it is one vehicle (a dealer with one car, exported
    as a bare object): it names a VIN or a stock or vehicle id. Anything else (an API's
    error answer, `{"vehicles": null}`) is None, so it is refused rather than read as a
    vehicle that would then be rejected with a less telling reason."""
    buf.pos = start
    try:
        value = _decode_value(buf, limit)
    except ValueError:
        return None
    if not isinstance(value, dict) or buf.skip_ws() != "":
        return None
    if not any(isinstance(k, str) and k.lower() in _VEHICLE_KEYS for k in value):
        return None
    return _no_nul(value)


_TOKEN = re.compile(r'["{}\[\],]')
_IN_STRING = re.compile(r'["\\]')


def _skip_record(buf: _Buffer, start: int, limit: int) -> bool:
    """Move the cursor past the broken record at `start`, onto the ',' or ']' after it:
    strings are skipped and brackets counted, so nothing inside the record (its nested
    objects, a "}, {" in a string) is taken for the next record. False when its end cannot
    be found (unbalanced brackets, an unterminated string, the file ends)."""
    pos, depth, in_string = start, 0, False
    while True:
        text = buf.text
        m = (_IN_STRING if in_string else _TOKEN).search(text, pos)
        if m is None:
            if len(text) - start > limit or not buf.more():
                return False
            continue
        c, pos = m.group(), m.end()
        if in_string:
            if c == "\\":
                pos += 1  # the escaped character (read on when it is not buffered yet)
            else:
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "{[":
            depth += 1
        elif depth:
            if c != ",":  # a "}" or "]" closing what the record opened
                depth -= 1
        elif c == "}":  # closing nothing the record opened
            return False
        else:  # a "," or the array's "]" at the record's own level: its end
            buf.pos = m.start()
            return True


def _ends_whole(buf: _Buffer, wrapped: bool, limit: int) -> bool:
    """Cursor past the list's "]": whether only what may follow it does (nothing; in a
    wrapper object, its other members and its "}"). Else the list that closed was not the
    feed's (or a second document follows), and records may be left unread."""
    try:
        while wrapped:
            buf.compact()
            ch = buf.skip_ws()
            if ch == "}":
                buf.pos += 1
                break
            if ch != ",":
                return False
            buf.pos += 1
            if not isinstance(_decode_value(buf, limit), str) or buf.skip_ws() != ":":
                return False
            buf.pos += 1
            _decode_value(buf, limit)
    except ValueError:
        return False
    return buf.skip_ws() == ""


def _enter_wrapped_array(buf: _Buffer, limit: int) -> bool:
    """Cursor on '{': walk the object's keys until a wrapper key holding an array."""
    buf.pos += 1
    while True:
        ch = buf.skip_ws()
        if ch in ("}", ""):
            return False
        if ch == ",":
            buf.pos += 1
            continue
        key = _decode_value(buf, limit)
        if buf.skip_ws() != ":":
            return False
        buf.pos += 1
        if isinstance(key, str) and key.lower() in _WRAPPER_KEYS and buf.skip_ws() == "[":
            buf.pos += 1
            return True
        _decode_value(buf, limit)  # some other member: skip it


def read_jsonl(stream: io.TextIOBase) -> Iterator[Row]:
    limit = get_settings().feed_max_record_chars
    number = 0
    line_no = 0
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        line_no += 1
        if len(line) > limit and not line.endswith("\n"):
            number += 1
            yield number, Unreadable(f"line {line_no} is longer than {limit:,} characters",
                                     raw=line[:2000], vin=listed_vin(line))
            while line and not line.endswith("\n"):
                line = stream.readline(limit + 1)
            continue
        text = line.strip()
        if not text:
            continue
        number += 1
        try:
            value = json.loads(text)
        except RecursionError:
            yield number, Unreadable(f"line {line_no} is not JSON: {_TOO_DEEP}",
                                     raw=text[:2000], vin=listed_vin(text))
            continue
        except ValueError as exc:
            cut = not line.endswith(("\n", "\r"))  # the last line, unterminated
            yield number, Unreadable(f"line {line_no} is not JSON: {exc}" + (CUT if cut else ""),
                                     raw=text[:2000], fatal=cut, vin=listed_vin(text))
            continue
        if "\\u0000" in text:
            value = _no_nul(value)
        yield number, value if isinstance(value, dict) else Unreadable(
            f"line {line_no} is a {type(value).__name__}, not an object", raw=text[:2000])


# -- dispatch --------------------------------------------------------------------------------

def read(path: Path, fmt: str | None = None, info: dict | None = None,
         unchanged: Callable[[str], bool] | None = None) -> Iterator[Row]:
    """Rows of a feed file of any supported format, compressed or not. `info`, when given,
    receives what was detected: format, encoding, inner file name, CSV delimiter.
    `unchanged`: see read_csv (other formats ignore it)."""
    from ingest import xml_reader

    settings = get_settings()
    fmt = detect_format(path, fmt)
    with streams.open_binary(path, settings.feed_max_bytes) as (binary, inner_name):
        head = binary.peek(streams.HEAD_BYTES)[:streams.HEAD_BYTES]
        text_head = streams.sniffable(head)  # UTF-16 as UTF-8
        refuse_html(text_head)
        refuse_document(head, inner_name)
        if fmt == "auto":
            fmt = format_from_name(inner_name) or sniff_format(text_head)
        elif fmt in ("json", "jsonl"):
            # a name (or a dealer's setting) saying JSON over JSON Lines, or the reverse:
            # the content decides when it plainly is the other
            sniffed = sniff_format(text_head)
            if (fmt, sniffed) == ("json", "jsonl") or (
                    fmt == "jsonl"
                    and text_head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")):
                fmt = sniffed
        if info is not None:
            info.update(format=fmt, file=inner_name)
        if fmt == "xml":
            yield from xml_reader.read_xml(binary, info)
            return
        delimiter = "\t" if fmt == "tsv" else None
        split = streams.byte_lines(binary) if fmt in ("csv", "tsv") else None
        if split is not None:
            lines, encoding, errors = split
            if info is not None:
                info["encoding"] = encoding
            yield from read_csv(lines, delimiter, unchanged, info, (encoding, errors))
            return
        text, encoding = streams.text_stream(binary)
        if info is not None:
            info["encoding"] = encoding
        if fmt in ("csv", "tsv"):
            yield from read_csv(text, delimiter, unchanged, info)
        elif fmt == "json":
            yield from read_json(text)
        else:
            yield from read_jsonl(text)
