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
record after it. A feed declaring windows-1252, ISO-8859-1 or US-ASCII is told at its first
byte beyond ASCII, however far in: read as UTF-8 when its bytes there are UTF-8 (exporters
hard-code the declaration), else as declared (xml_streams.XmlDeclaredOrUtf8).
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
from ingest import streams, xml_streams
from ingest.rows import Row, Unreadable

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
    `declared_encoding` when the feed is read in another encoding than it declares (UTF-8;
    windows-1252 for US-ASCII), as soon as that is told."""
    head = binary.peek(64 * 1024)[:64 * 1024]
    if _DOCTYPE.search(head):
        raise UnsafeXML("XML feed declares a DOCTYPE; refused (entity expansion and external "
                        "entities are not allowed)", hint="send the feed without a DOCTYPE")
    match = _ENCODING.match(head)
    declared = match.group(1).decode("ascii") if match else None
    encoding, _ = streams.detect_encoding(head)
    override = None
    if encoding.startswith("utf-16"):  # with a BOM or without (libxml2 tells either)
        order = streams.utf16_order(encoding, head)
        binary = io.BufferedReader(streams.Utf16EndFree(binary, order), streams.CHUNK_BYTES)
        binary = io.BufferedReader(xml_streams.XmlText(binary, order), streams.CHUNK_BYTES)
    elif declared is None or declared.lower() in ("utf-8", "utf8"):
        binary = io.BufferedReader(xml_streams.XmlText(binary), streams.CHUNK_BYTES)
    elif _single_byte(declared):  # maybe UTF-8 after all: told at its first byte past ASCII
        override = "utf-8"  # lxml's encoding= wins over the declaration
        told = functools.partial(_told, info, declared)
        binary = io.BufferedReader(xml_streams.XmlDeclaredOrUtf8(binary, declared, told),
                                   streams.CHUNK_BYTES)
    elif _ascii_compatible(declared):
        binary = io.BufferedReader(xml_streams.XmlBytes(binary), streams.CHUNK_BYTES)
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
                docinfo = elem.getroottree().docinfo
                if docinfo.doctype or docinfo.internalDTD is not None:
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


@functools.lru_cache(maxsize=32)
def _single_byte(encoding: str) -> bool:
    """Whether an encoding an XML declaration names is windows-1252, ISO-8859-1 or US-ASCII
    (under any of their names): what xml_streams.XmlDeclaredOrUtf8 reads."""
    try:
        return codecs.lookup(encoding).name in _WESTERN
    except LookupError:
        return False


def _told(info: dict | None, declared: str, encoding: str) -> None:
    """Record in `info` the encoding a feed is read in, when it is not the one declared."""
    if info is not None and codecs.lookup(encoding).name != codecs.lookup(declared).name:
        info.update(encoding=encoding, declared_encoding=declared)


@functools.lru_cache(maxsize=32)
def _ascii_compatible(encoding: str) -> bool:
    """Whether an encoding an XML declaration names is one Python knows whose bytes below
    0x80 are ASCII's and which shifts no state (not ISO-2022-*: see xml_streams.XmlBytes).
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
