"""Text values as stored: trimmed, on one line, None for empty and placeholder values."""

from __future__ import annotations

import re
from typing import Any

_EMPTY = {"", "n/a", "na", "none", "null", "-", "--", "tbd", "unknown", "not specified"}
_WS = re.compile(r"\s+")


_NEEDS_SPACING = re.compile(r"\s\s|[\n\t\r\xa0]")
_TEXT: dict[str, str | None] = {}  # short strings repeat (models, colours, trims)


def text(value: Any) -> str | None:
    """A trimmed single-line string, or None for empty and placeholder values."""
    if value is None:
        return None
    if value.__class__ is str:  # the common case, kept short: called ~25 times a row
        try:
            return _TEXT[value]
        except KeyError:
            pass
        s = value.strip()
        if _NEEDS_SPACING.search(s):
            s = _WS.sub(" ", s)
        s = None if len(s) < 16 and s.lower() in _EMPTY else s
        if len(value) <= 40:
            if len(_TEXT) >= 8192:
                _TEXT.clear()
            _TEXT[value] = s
        return s
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value if v is not None)
    if isinstance(value, dict):
        value = value.get("name") or value.get("@value") or value.get("value")
        if value is None:
            return None
    s = value.strip() if isinstance(value, str) else str(value).strip()
    if "  " in s or "\n" in s or "\t" in s or "\r" in s or "\xa0" in s:
        s = _WS.sub(" ", s)
    return None if len(s) < 16 and s.lower() in _EMPTY else s
