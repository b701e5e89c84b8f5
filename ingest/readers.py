"""The feed readers' front: `read` opens a feed file (compressed or not), tells its format
(declared, from its name, or sniffed from its first bytes), refuses a web page or a document
sent where a feed was expected, and hands it to the reader for that format (csv_reader,
json_reader, xml_reader). Each yields (row number, row) and holds one row at a time: see
ingest.rows for what a row is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

from crawler.config import get_settings
from crawler.errors import Permanent
from ingest import streams, xml_reader
from ingest.csv_reader import read_csv
from ingest.json_reader import read_json, read_jsonl
from ingest.rows import Row

FORMATS = ("csv", "tsv", "json", "jsonl", "xml")


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


# -- dispatch --------------------------------------------------------------------------------

def read(path: Path, fmt: str | None = None, info: dict | None = None,
         unchanged: Callable[[str], bool] | None = None) -> Iterator[Row]:
    """Rows of a feed file of any supported format, compressed or not. `info`, when given,
    receives what was detected: format, encoding, inner file name, CSV delimiter.
    `unchanged`: see csv_reader.read_csv (other formats ignore it)."""
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
