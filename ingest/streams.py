"""Byte and text streams under the readers: decompression, a size limit, encoding detection.

A feed file may be plain, gzip or zip (detected from its first bytes, not its name). Whatever
it is, reading stops with `FeedTooLarge` once more than `feed_max_bytes` decompressed bytes
came out, so a compression bomb costs a bounded amount of work and no memory. Text is UTF-8
(with or without BOM), UTF-16 (with a BOM, or without one: told by where its NUL bytes
are), or Windows-1252; a UTF-8 feed with a few stray Windows-1252 bytes is decoded byte by
byte instead of failing. A DOS end-of-file mark (^Z) that ends the file is dropped. What
XML alone needs on top of these is in ingest.xml_streams.
"""

from __future__ import annotations

import codecs
import gzip
import io
import itertools
import re
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from crawler.errors import Permanent

HEAD_BYTES = 64 * 1024
CHUNK_BYTES = 256 * 1024
FEED_SUFFIXES = (".csv", ".tsv", ".txt", ".json", ".jsonl", ".ndjson", ".xml")


class FeedTooLarge(Permanent):
    """Raised when a feed decompresses (or downloads) to more than the configured limit."""


class CorruptFeed(Permanent):
    """Raised when a compressed feed is corrupt or truncated (bad CRC, lying sizes, cut off)."""


_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, gzip.BadGzipFile)


def _cp1252_fallback(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start:exc.end]
    return bad.decode("cp1252", errors="replace"), exc.end


codecs.register_error("forecourt-cp1252", _cp1252_fallback)


class Limited(io.RawIOBase):
    """A read-only stream that serves `head` first, then `inner`, and refuses to go past
    `limit` bytes in total."""

    def __init__(self, inner: BinaryIO, limit: int, head: bytes = b"", what: str = "feed"):
        self._inner, self._limit, self._head, self._what = inner, limit, head, what
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
        else:
            try:  # straight into the caller's buffer (a plain file: no copy of its own)
                n = self._inner.readinto(view) or 0
            except _CORRUPT as exc:
                raise CorruptFeed(f"{self._what} is a corrupt or truncated archive: {exc}",
                                  hint="send the feed again, whole") from exc
        self.count += n
        if self.count > self._limit:
            raise FeedTooLarge(
                f"{self._what} is larger than {self._limit:,} bytes once decompressed; "
                "reading stopped",
                hint="raise FORECOURT_FEED_MAX_BYTES if the feed is really this large")
        return n


def _office_document(zf: zipfile.ZipFile) -> str | None:
    """What a zip is when it is an Office Open XML or OpenDocument file (.xlsx, .ods...,
    all zips), else None."""
    names = zf.namelist()
    if "[Content_Types].xml" in names:
        for folder, what in (("xl/", "an Excel workbook"), ("word/", "a Word document"),
                             ("ppt/", "a PowerPoint presentation")):
            if any(n.startswith(folder) for n in names):
                return what
        return "a Microsoft Office document"
    if "mimetype" in names:
        with zf.open("mimetype") as member:  # its start only: a member may be a bomb
            kind = member.read(100)
        if kind.startswith(b"application/vnd.oasis.opendocument.spreadsheet"):
            return "a spreadsheet (OpenDocument)"
        if kind.startswith(b"application/vnd.oasis.opendocument"):
            return "an OpenDocument file"
    return None


def _zip_member(zf: zipfile.ZipFile, name: str) -> zipfile.ZipInfo:
    document = _office_document(zf)
    if document is not None:
        raise Permanent(f"{name} is {document}, not a feed",
                        hint="export the sheet as CSV (UTF-8) and send that"
                        if "sheet" in document or "Excel" in document
                        else "send the feed itself: CSV, TSV, XML, JSON or JSON Lines")
    members = [i for i in zf.infolist() if not i.is_dir()
               and not i.filename.startswith("__MACOSX/")
               and not i.filename.rsplit("/", 1)[-1].startswith(".")]
    if not members:
        raise Permanent(f"zip archive {name} holds no file")
    feeds = [i for i in members if i.filename.lower().endswith(FEED_SUFFIXES)]
    if len(feeds) > 1 or (not feeds and len(members) > 1):
        names = ", ".join(i.filename for i in (feeds or members)[:5])
        raise Permanent(f"zip archive {name} holds several files ({names})",
                        hint="zip a single feed file")
    return (feeds or members)[0]


@contextmanager
def open_binary(path: Path, limit: int) -> Iterator[tuple[io.BufferedReader, str]]:
    """The decompressed bytes of a feed file, and the name of what is inside (which tells
    the format: 'x.csv.gz' -> 'x.csv', a zip member's name)."""
    raw = path.open("rb")
    try:
        magic = raw.read(4)
        raw.seek(0)
        inner_name = path.name
        if magic[:2] == b"\x1f\x8b":
            inner: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb")
            inner_name = path.name[:-3] if path.name.lower().endswith(".gz") else path.stem
        elif magic in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):  # empty, spanned
            try:
                zf = zipfile.ZipFile(raw)
            except _CORRUPT as exc:
                raise CorruptFeed(f"{path.name} is a corrupt zip archive: {exc}") from exc
            info = _zip_member(zf, path.name)
            if info.file_size > limit:
                raise FeedTooLarge(
                    f"{path.name}: {info.filename} would decompress to {info.file_size:,} "
                    f"bytes, over the {limit:,} limit",
                    hint="raise FORECOURT_FEED_MAX_BYTES if the feed is really this large")
            inner = zf.open(info)
            inner_name = info.filename.rsplit("/", 1)[-1]
        else:
            inner = raw
        yield io.BufferedReader(Limited(inner, limit, what=path.name), CHUNK_BYTES), inner_name
    finally:
        raw.close()


def _utf16_without_bom(head: bytes) -> str | None:
    """'utf-16-le' or 'utf-16-be' when the start of a feed is UTF-16 without a BOM (Excel's
    "Unicode text", .NET and SQL Server exports): a feed's text is mostly ASCII (its
    header, digits, VINs, links, punctuation), each character a NUL byte beside its own,
    so one byte of a pair in three or more is NUL and the other almost never is. NUL is
    valid UTF-8: such a feed was read as UTF-8 or Windows-1252 with its NULs dropped, and
    every character beyond ASCII came out as two wrong ones. Binary junk or NUL padding
    in a single-byte feed has NULs on both sides, or few."""
    sample = head[:4096]
    units = len(sample) // 2
    if units < 2:
        return None
    sample = sample[:2 * units]
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if 3 * odd >= units and 20 * even <= odd:
        return "utf-16-le"
    if 3 * even >= units and 20 * odd <= even:
        return "utf-16-be"
    return None


def detect_encoding(head: bytes) -> tuple[str, int]:
    """(codec, BOM length) for the start of a text feed. UTF-16 with a BOM is 'utf-16'
    (the codec reads the BOM and the byte order); without one, 'utf-16-le' or
    'utf-16-be'."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8", 3
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", 0
    order = _utf16_without_bom(head)
    if order is not None:
        return order, 0
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return "cp1252", 0
    return "utf-8", 0


def utf16_order(encoding: str, head: bytes) -> str:
    """'utf-16-le' or 'utf-16-be': the byte order of a UTF-16 feed, as detect_encoding named
    it and its `head` (a BOM) shows."""
    if encoding != "utf-16":
        return encoding
    return "utf-16-le" if head.startswith(codecs.BOM_UTF16_LE) else "utf-16-be"


def sniffable(head: bytes) -> bytes:
    """The start of a feed as UTF-8 when it is UTF-16, else as it is: what its format (a
    '[' or '<' first) and an HTML page are told from. Raw UTF-16 has a BOM or NULs there."""
    encoding, _ = detect_encoding(head)
    if not encoding.startswith("utf-16"):
        return head
    return head[:len(head) // 2 * 2].decode(encoding, "replace").encode()


# What may follow a DOS end-of-file mark (^Z) at the end of a file: more of them, blanks
_EOF_TAIL = b"\x1a \t\r\n\x0b\x0c"


class NulFree(io.RawIOBase):
    """Bytes without NUL: PostgreSQL text and jsonb cannot hold one, and no single-byte or
    UTF-8 feed means one (binary junk). Nor a DOS end-of-file mark, ^Z (\\x1a), that ends
    the file (legacy exporters write one, maybe with a line break after it): read, it was
    a last line short of fields or text after the JSON list, and every run of the feed
    looked cut short. A chunk ending in ^Z and blanks keeps them back until the next read
    shows whether the file goes on. Works per chunk, so it costs nothing per row."""

    def __init__(self, inner: io.BufferedReader):
        self._inner = inner
        self._held = b""  # a chunk's trailing ^Z and blanks, until more bytes follow
        self._out = b""  # bytes read that did not fit the caller's buffer

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        while not self._out:
            data = self._inner.read1(len(view))
            if not data:
                return 0  # what is held ended the file: dropped
            if b"\x00" in data:  # a scan, not a copy, for the common clean chunk
                data = data.replace(b"\x00", b"")
            if self._held:
                data, self._held = self._held + data, b""
            if data and data[-1] in _EOF_TAIL:  # most chunks end mid-line: one comparison
                cut = data.find(b"\x1a", len(data.rstrip(_EOF_TAIL)))
                if cut >= 0:
                    data, self._held = data[:cut], data[cut:]
            self._out = data
        n = min(len(view), len(self._out))
        view[:n] = self._out[:n]
        self._out = self._out[n:] if n < len(self._out) else b""
        return n


# The same blanks in UTF-16, as the low byte of a code unit whose high byte is 0; and NUL,
# which UTF-16 text has dropped after decoding (as NulFree drops it before looking)
_EOF_TAIL_UNITS = frozenset(_EOF_TAIL + b"\x00")


class Utf16EndFree(io.RawIOBase):
    """A UTF-16 feed's bytes without the DOS end-of-file mark (^Z and the blanks after it)
    that ends the file, as NulFree drops it from single-byte and UTF-8 feeds: a UTF-16
    export with one made every run partial. `codec` gives the byte order ('utf-16-le' or
    'utf-16-be'). Works on whole code units per chunk (a chunk's odd last byte waits for
    the next); a ^Z anywhere else is data."""

    def __init__(self, inner: io.BufferedReader, codec: str):
        self._inner = inner
        self._low = 1 if codec.endswith("be") else 0  # where a code unit's low byte is
        self._odd = b""  # a chunk's last byte, half a code unit
        self._held = b""  # a chunk's trailing ^Z and blanks, until more bytes follow
        self._out = b""

    def readable(self) -> bool:
        return True

    def _mark(self, data: bytes) -> int | None:
        """Where the ^Z starts that only blanks (or more ^Z) follow to the end of `data`."""
        low, mark, pos = self._low, None, len(data)
        while pos >= 2 and data[pos - 2 + low] in _EOF_TAIL_UNITS and not data[pos - 1 - low]:
            pos -= 2
            if data[pos + low] == 0x1A:
                mark = pos
        return mark

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        while not self._out:
            data = self._inner.read1(max(len(view), 2))
            if not data:  # the end: what is held is dropped, unless a lone byte follows it
                self._out, self._odd = (self._held + self._odd if self._odd else b""), b""
                self._held = b""
                if not self._out:
                    return 0
                break
            if self._odd:
                data, self._odd = self._odd + data, b""
            if len(data) % 2:
                data, self._odd = data[:-1], data[-1:]
            if self._held:
                data, self._held = self._held + data, b""
            cut = self._mark(data)
            if cut is not None:
                data, self._held = data[:cut], data[cut:]
            self._out = data
        n = min(len(view), len(self._out))
        view[:n] = self._out[:n]
        self._out = self._out[n:] if n < len(self._out) else b""
        return n


class _NulFreeText(io.TextIOBase):
    """The same for UTF-16 text, where NUL bytes are part of every character."""

    def __init__(self, inner: io.TextIOBase):
        self._inner = inner

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        return self._inner.read(size).replace("\x00", "")

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        return self._inner.readline(size).replace("\x00", "")


def byte_lines(binary: io.BufferedReader) -> tuple[io.BufferedReader, str, str] | None:
    """A feed's bytes to be split into lines as bytes, each decoded on its own: (NUL-free
    bytes, codec, error handler), BOM skipped. None for UTF-16, whose line ends are not
    single bytes: read it through text_stream then.

    A feed read this way is only decoded where a row is parsed: a re-ingest's unchanged
    rows are recognised by their bytes (see ingest.csv_reader.read_csv). Split it with
    `lines`."""
    head = binary.peek(HEAD_BYTES)[:HEAD_BYTES]
    encoding, bom = detect_encoding(head)
    if encoding.startswith("utf-16"):
        return None
    if bom:
        binary.read(bom)
    errors = "forecourt-cp1252" if encoding == "utf-8" else "replace"
    return io.BufferedReader(NulFree(binary), CHUNK_BYTES), encoding, errors


class TooLong(bytes):
    """The first bytes of a line longer than its reader takes; the rest of it was dropped."""


_EOL = re.compile(rb"[\r\n]")


def lines(stream: io.BufferedReader, longest: int | None = None) -> Iterator[bytes]:
    """The lines of a byte stream, each with its terminator, ended by a line feed, a carriage
    return and line feed, or a carriage return alone (as a text stream with universal
    newlines splits them, and so as the csv module expects). Split a chunk at a time, and
    walked without resuming a generator per line.

    A line longer than `longest` bytes is handed on as its first `longest` bytes, a
    `TooLong`, without its terminator (which follows as a line of its own), and the rest of
    it is dropped as it is read: memory holds a chunk and at most `longest` bytes of a line
    however long it is (a file with no line breaks at all, say)."""
    return itertools.chain.from_iterable(_line_chunks(stream, longest))


def _line_chunks(stream: io.BufferedReader, longest: int | None) -> Iterator[list[bytes]]:
    rest = b""
    skipping = False  # past a TooLong, until its line ends
    while True:
        chunk = stream.read(CHUNK_BYTES)
        if not chunk:
            if rest:
                yield [rest]
            return
        if skipping:
            end = _EOL.search(chunk)
            if end is None:
                continue
            chunk, skipping = chunk[end.start():], False
        split = (rest + chunk if rest else chunk).splitlines(keepends=True)
        rest = split.pop()
        if rest.endswith(b"\n"):  # else unfinished, or a CR whose LF may come next
            split.append(rest)
            rest = b""
        elif longest is not None and len(rest) > longest:
            split.append(TooLong(rest[:longest]))
            rest, skipping = b"", True
        yield split


def text_stream(binary: io.BufferedReader) -> tuple[io.TextIOBase, str]:
    """Decode a feed's bytes; returns the text stream and the encoding detected."""
    head = binary.peek(HEAD_BYTES)[:HEAD_BYTES]
    encoding, bom = detect_encoding(head)
    if bom:
        binary.read(bom)
    errors = "forecourt-cp1252" if encoding == "utf-8" else "replace"
    if encoding.startswith("utf-16"):
        clean = io.BufferedReader(Utf16EndFree(binary, utf16_order(encoding, head)),
                                  CHUNK_BYTES)
        return _NulFreeText(io.TextIOWrapper(clean, encoding=encoding, errors=errors,
                                             newline="")), encoding
    clean = io.BufferedReader(NulFree(binary), CHUNK_BYTES)
    text = io.TextIOWrapper(clean, encoding=encoding, errors=errors, newline="")
    # Decode in 256 KB steps, not 8 KB: each read below releases the GIL, and the run's
    # writer thread then holds it for up to a switch interval (5 ms) before the reader gets
    # it back; 32 times fewer reads cost a 512 MB feed seconds less of waiting.
    text._CHUNK_SIZE = CHUNK_BYTES  # type: ignore[attr-defined]
    return text, encoding
