"""JSON and JSON Lines feeds. A JSON feed (an array, an object wrapping one under a key such
as "vehicles", or one bare vehicle object) is decoded one record at a time from text read in
chunks, a broken record skipped by its brackets; a JSON Lines feed is read line by line.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator

from crawler.config import get_settings
from crawler.errors import Permanent
from ingest.rows import CUT, Row, Unreadable, listed_vin

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
    vehicle that would then be rejected with a less telling reason; an object that is cut
    off or not JSON at all is refused here, saying so."""
    buf.pos = start
    try:
        value = _decode_value(buf, limit)
    except CutOff as exc:  # "give a list" would be no fix for a file cut short
        raise Permanent(f"JSON feed ends before its list of vehicles begins ({exc})",
                        hint="the file is cut short: fetch or export it again") from exc
    except json.JSONDecodeError as exc:
        raise Permanent(f"JSON feed is not valid JSON: {exc}",
                        hint='fix its export: an array of vehicle objects, or an object '
                             'with a "vehicles" list') from exc
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

