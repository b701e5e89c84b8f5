"""XML feeds' bytes as the parser can take them: the control characters XML 1.0 forbids
dropped (XmlText for UTF-8 and UTF-16, XmlBytes for an ASCII-compatible encoding a
declaration names), and a declaration of a single-byte encoding over UTF-8 bytes told at
the feed's first byte beyond ASCII (XmlDeclaredOrUtf8). Each works per chunk, under the
decompression and size limit of ingest.streams.open_binary.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Callable

from ingest.streams import CHUNK_BYTES, HEAD_BYTES  # also registers "forecourt-cp1252"

# Characters XML 1.0 does not allow (every C0 control but tab, line feed and carriage return)
_NOT_XML = dict.fromkeys([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])


class _Chunked(io.RawIOBase):
    """A raw stream handing out, piece by piece, the chunks its `_chunk` makes (bytes, maybe
    empty; None at the end)."""

    _out = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        while not self._out:
            out = self._chunk()
            if out is None:
                return 0
            self._out = out
        n = min(len(view), len(self._out))
        view[:n] = self._out[:n]
        self._out = self._out[n:] if n < len(self._out) else b""
        return n

    def _chunk(self) -> bytes | None:
        raise NotImplementedError


class XmlText(_Chunked):
    """The bytes of an XML document in UTF-8 (or saying nothing of its encoding) or in
    UTF-16 (`codec` 'utf-16-le' or 'utf-16-be'), as the parser can take them, in the same
    encoding: the control characters XML forbids (NUL, a spreadsheet's vertical tab, ^Z)
    dropped, and in UTF-8 stray Windows-1252 bytes decoded as the text readers decode them
    (in UTF-16 a lone surrogate becomes U+FFFD, as there). libxml2 stops at the first of
    either, and every record after it was lost. Valid text without such controls comes out
    as it went in (a UTF-16 BOM too). Works per chunk."""

    def __init__(self, inner: io.BufferedReader, codec: str = "utf-8"):
        self._inner, self._codec = inner, codec
        errors = "forecourt-cp1252" if codec == "utf-8" else "replace"
        self._decoder = codecs.getincrementaldecoder(codec)(errors)

    def _chunk(self) -> bytes | None:
        data = self._inner.read1(CHUNK_BYTES)
        text = self._decoder.decode(data, final=not data)
        if not data and not text:
            return None
        return text.translate(_NOT_XML).encode(self._codec)


# The same controls as bytes: one byte each, of the same value, in any ASCII-compatible
# encoding (see XmlBytes)
_NOT_XML_BYTES = bytes(_NOT_XML)


class XmlBytes(io.RawIOBase):
    """The bytes of an XML document in an ASCII-compatible encoding its declaration names
    (ISO-8859-1, windows-1252, Shift_JIS...) without the control characters XML forbids,
    as XmlText drops them from UTF-8. In such an encoding each of them is the byte of its
    own value, and no other character's bytes hold one (a multi-byte character's bytes are
    all 0x40 or more in Shift_JIS, GBK, Big5, EUC), so they are dropped from the bytes,
    which are not decoded: everything else reaches the parser as it was, and the parser
    decodes it as before. Not for stateful encodings (ISO-2022-JP shifts with ESC, a
    control byte). Works per chunk."""

    def __init__(self, inner: io.BufferedReader):
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        while True:
            data = self._inner.read1(len(view))
            if not data:
                return 0
            data = data.translate(None, _NOT_XML_BYTES)  # never longer than it was
            if data:
                view[:len(data)] = data
                return len(data)


_BEYOND_ASCII = re.compile(rb"[\x80-\xff]")


class XmlDeclaredOrUtf8(_Chunked):
    """The bytes of an XML document declaring a single-byte encoding (`codec`: windows-1252,
    ISO-8859-1 or US-ASCII) in UTF-8, for a parser told they are, without the control
    characters XML forbids (dropped from the bytes, as XmlBytes does).

    Exporters hard-code such a declaration over bytes that are really UTF-8. ASCII reads
    the same in all of these, so the bytes go through as they are up to the first one
    beyond ASCII, wherever it is (a long feed's first accented name may be in its 300th
    record), and the feed is told there: UTF-8 when that byte starts a whole UTF-8
    character (a BOM is one) and the HEAD_BYTES from it are UTF-8 too, else what it
    declares. Real windows-1252 or Latin-1 text almost never passes: an accented letter
    there is a lone byte >= 0x80, which UTF-8 refuses. Read as declared, UTF-8 was mojibake
    (Citro\u00c3\u00abn), or stopped the parser at a byte windows-1252 leaves undefined
    (0x81 in \u00c1, 0x8D in \u00cd), losing every record after it.

    From there, UTF-8 has stray single bytes decoded as windows-1252 (as XmlText does);
    the declared encoding is decoded and written out as UTF-8, a byte windows-1252 leaves
    undefined becoming U+FFFD and one beyond US-ASCII read as windows-1252, as the text
    readers decode them. `decided(encoding)` is called once the feed is told ('utf-8',
    `codec`, or 'cp1252' for US-ASCII). Works per chunk, holding HEAD_BYTES more while the
    feed is told."""

    def __init__(self, inner: io.BufferedReader, codec: str,
                 decided: Callable[[str], object] | None = None):
        self._inner, self._decided = inner, decided
        self._codec = "cp1252" if codecs.lookup(codec).name == "ascii" else codec
        self._decoder: codecs.IncrementalDecoder | None = None  # until told

    def _chunk(self) -> bytes | None:
        """The next chunk in UTF-8 (maybe empty), None at the end."""
        data = self._inner.read1(CHUNK_BYTES)
        if self._decoder is None:
            if not data:
                return None
            data = data.translate(None, _NOT_XML_BYTES)
            if data.isascii():
                return data
            decoder, data, final = self._tell(data)
        else:
            decoder, final = self._decoder, not data
            data = data.translate(None, _NOT_XML_BYTES)
        text = decoder.decode(data, final)
        return None if final and not text else text.encode("utf-8")

    def _tell(self, data: bytes) -> tuple[codecs.IncrementalDecoder, bytes, bool]:
        """Tell the feed from `data`, a chunk holding its first byte beyond ASCII, read on
        until HEAD_BYTES follow that byte (the rest of a character a read cut, and what tells
        a real UTF-8 feed from one with an accented letter that happens to be UTF-8).
        Returns the decoder chosen, the bytes read and whether the feed ended."""
        at = _BEYOND_ASCII.search(data).start()  # type: ignore[union-attr]
        pieces, size, final = [data], len(data), False
        while size - at < HEAD_BYTES:
            more = self._inner.read1(CHUNK_BYTES)
            if not more:
                final = True
                break
            pieces.append(more.translate(None, _NOT_XML_BYTES))
            size += len(pieces[-1])
        data = b"".join(pieces) if len(pieces) > 1 else data
        utf8 = (at == 0 and data.startswith(codecs.BOM_UTF8)) or _utf8_from(
            data[at:at + HEAD_BYTES], final and size - at <= HEAD_BYTES)
        encoding = "utf-8" if utf8 else self._codec
        errors = "forecourt-cp1252" if utf8 else "replace"
        self._decoder = codecs.getincrementaldecoder(encoding)(errors)
        if self._decided is not None:
            self._decided(encoding)
        return self._decoder, data, final


def _utf8_from(data: bytes, final: bool) -> bool:
    """Whether `data`, starting with a byte beyond ASCII, is strict UTF-8 from a whole
    character on (when not `final`, a character cut at its end is allowed)."""
    try:
        return bool(codecs.getincrementaldecoder("utf-8")().decode(data, final))
    except UnicodeDecodeError:
        return False
