"""XML feeds, parsed incrementally and safely: Google vehicle listings / vehicle ads (RSS
`<item>` or Atom `<entry>` with `g:` fields), Meta automotive catalogs (`<listing>`), and
generic `<vehicle>` lists.

Safety: a feed with a DOCTYPE is refused before parsing (feeds never need one; it is how
entity expansion (billion laughs) and external entities (XXE) arrive), and lxml runs with
entities unresolved, no network, no DTD loading and without huge-tree mode, as a second wall.
Memory: each record is turned into a dict and cleared, with its earlier siblings, as soon as
its end tag is read. Control characters XML forbids (a vertical tab, ^Z) are dropped before
parsing in UTF-8, UTF-16 and every ASCII-compatible encoding a declaration names
(ISO-8859-1, windows-1252, Shift_JIS...): the parser stopped at the first, losing every
record after it. A feed declaring windows-1252, ISO-8859-1 or US-ASCII whose start is
UTF-8 is read as UTF-8 (_utf8_after_all).
"""

from __future__ import annotations

import codecs
import functools
import io
import re
from collections.abc import Iterator
from typing import Any

from lxml import etree

from crawler.errors import Permanent
from ingest import streams
from ingest.readers import Row, Unreadable

RECORD_TAGS = {"item", "entry", "listing", "vehicle", "record", "row"}
_DOCTYPE = re.compile(rb"<!DOCTYPE", re.I)
# the encoding an XML declaration names (none: UTF-8)
_ENCODING = re.compile(rb"(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)")


class UnsafeXML(Permanent):
    """Raised for an XML feed that declares a DOCTYPE (entities, external DTDs)."""


def _local(tag: Any) -> str:
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1] if tag.startswith("{") else tag.split(":")[-1]


def element_value(elem: etree._Element) -> Any:
    """An element as data: text for a leaf (its attributes when it has no text), a dict for
    one with children; a name repeated among siblings becomes a list."""
    children = [c for c in elem if isinstance(c.tag, str)]
    if not children:
        text = (elem.text or "").strip()
        if not text and elem.attrib:
            return {_local(k): v for k, v in elem.attrib.items()}
        return text
    out: dict[str, list[Any]] = {}
    for child in children:
        out.setdefault(_local(child.tag), []).append(element_value(child))
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()}


def read_xml(binary: io.BufferedReader, info: dict | None = None) -> Iterator[Row]:
    """The records of an XML feed. `info`, when given, receives `encoding` and
    `declared_encoding` when the feed is read as UTF-8 against its declaration."""
    head = binary.peek(64 * 1024)[:64 * 1024]
    if _DOCTYPE.search(head):
        raise UnsafeXML("XML feed declares a DOCTYPE; refused (entity expansion and external "
                        "entities are not allowed)", hint="send the feed without a DOCTYPE")
    declared = _ENCODING.match(head)
    encoding, _ = streams.detect_encoding(head)
    override = None
    if encoding.startswith("utf-16"):  # with a BOM or without (libxml2 tells either)
        order = streams.utf16_order(encoding, head)
        binary = io.BufferedReader(streams.Utf16EndFree(binary, order), streams.CHUNK_BYTES)
        binary = io.BufferedReader(streams.XmlText(binary, order), streams.CHUNK_BYTES)
    elif declared is None or declared.group(1).lower() in (b"utf-8", b"utf8"):
        binary = io.BufferedReader(streams.XmlText(binary), streams.CHUNK_BYTES)
    elif _utf8_after_all(declared.group(1).decode("ascii"), head):
        override = "utf-8"  # lxml's encoding= wins over the declaration
        binary = io.BufferedReader(streams.XmlText(binary), streams.CHUNK_BYTES)
        if info is not None:
            info.update(encoding="utf-8", declared_encoding=declared.group(1).decode("ascii"))
    elif _ascii_compatible(declared.group(1).decode("ascii")):
        binary = io.BufferedReader(streams.XmlBytes(binary), streams.CHUNK_BYTES)
    parser_args = dict(events=("end",), resolve_entities=False, no_network=True,
                       huge_tree=False, load_dtd=False, dtd_validation=False,
                       remove_comments=True, remove_pis=True, recover=False,
                       encoding=override)
    number = 0
    context = etree.iterparse(binary, **parser_args)
    checked = closed = False
    try:
        for _, elem in context:
            closed = elem.getparent() is None  # the root's end tag: the document is whole
            if not checked:  # a DOCTYPE past the first 64 KB, or in UTF-16, is still one
                checked = True
                info = elem.getroottree().docinfo
                if info.doctype or info.internalDTD is not None:
                    raise UnsafeXML("XML feed declares a DOCTYPE; refused (entity expansion "
                                    "and external entities are not allowed)",
                                    hint="send the feed without a DOCTYPE")
            if _local(elem.tag) not in RECORD_TAGS:
                continue
            parent = elem.getparent()
            if parent is not None and _local(parent.tag) in RECORD_TAGS:
                continue  # a nested <item> inside a record is part of the record
            number += 1
            value = element_value(elem)
            yield number, value if isinstance(value, dict) else Unreadable(
                f"record {number} is empty", raw=value or None)
            elem.clear(keep_tail=False)
            while elem.getprevious() is not None:
                del parent[0]
    except etree.XMLSyntaxError as exc:
        # the parser's own log: the exception's may hold earlier parses' errors too
        errors = list(context.error_log)
        if closed and errors and all(e.domain == etree.ErrorDomains.NAMESPACE
                                     for e in errors):
            # e.g. a Google feed using g: without declaring xmlns:g; libxml2 reports that
            # when the document ends, which it did: the records were all read
            return
        if "entity" in str(exc).lower() and number == 0:
            raise UnsafeXML(f"XML feed uses undeclared or external entities: {exc}") from exc
        yield number + 1, Unreadable(f"the XML cannot be read past this point: "
                                     f"{_cause(exc, errors)}", fatal=True)


_ASCII = bytes(range(0x80))
# single-byte encodings exporters hard-code in a declaration over bytes that are UTF-8
_WESTERN = {"cp1252", "iso8859-1", "ascii"}


def _utf8_after_all(encoding: str, head: bytes) -> bool:
    """Whether a feed declaring windows-1252, ISO-8859-1 or US-ASCII is really UTF-8: its
    start holds bytes beyond ASCII and they are strict UTF-8, at least one whole multi-byte
    character (a UTF-8 BOM is one). Real windows-1252 or Latin-1 text almost never is: an
    accented letter there is a lone byte >= 0x80, which UTF-8 refuses; read as declared,
    UTF-8 was mojibake (Citro\u00c3\u00abn), or stopped lxml at a byte windows-1252 leaves
    undefined (0x81 in \u00c1, 0x8D in \u00cd), losing every record after it. A stray
    single byte further on is decoded as windows-1252 (streams.XmlText), not an error."""
    try:
        if codecs.lookup(encoding).name not in _WESTERN:
            return False
    except LookupError:
        return False
    if head.isascii():
        return False
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return not text.isascii()  # not only a character cut at the end of the head


@functools.lru_cache(maxsize=32)
def _ascii_compatible(encoding: str) -> bool:
    """Whether an encoding an XML declaration names is one Python knows whose bytes below
    0x80 are ASCII's and which shifts no state (not ISO-2022-*: see streams.XmlBytes).
    Not UTF-16 or -32, UTF-7, EBCDIC (cp037, cp500...) or a name Python does not know:
    such a feed goes to the parser as it came."""
    try:
        codec = codecs.lookup(encoding)
        return not codec.name.startswith("iso2022") and codec.decode(_ASCII)[0] == \
            _ASCII.decode("ascii")
    except (LookupError, UnicodeError):
        return False


def _cause(exc: etree.XMLSyntaxError, logged: list) -> str:
    """The error that stopped the parser, not an undeclared prefix libxml2 noted first."""
    errors = [e for e in logged if e.domain != etree.ErrorDomains.NAMESPACE]
    if not errors:
        return str(exc)
    e = errors[0]
    return f"{e.message.strip()}, line {e.line}, column {e.column}"
